"""Evaluation at the floor (issue 18): the fused MLP inference pass, chunk sizes, shared sets and
sets drawn once give the same metrics as the plain path (bit for bit where the issue asks it)."""

from __future__ import annotations

import pytest
import torch

import learnlab
import learnlab.train._eval_rows as eval_rows
from learnlab.models import MLP
from learnlab.train._evaluation import CHUNK, chunk_rows, evaluate, fixed_source, streamed_source
from learnlab.train._metrics import BLOCK

METRICS = ["mse", "l1", "linf", "rel_l2", "accuracy"]


def _stack(members: int, bias: bool = True, param: str = "mup", seed: int = 0, **kwargs) -> MLP:
    gens = [torch.Generator().manual_seed(seed + s) for s in range(members)]
    return MLP(6, 96, 2, kwargs.pop("outputs", 1), generators=gens, bias=bias, param=param, base_width=32, **kwargs)


def _task():
    return learnlab.make_task(
        {"inputs": {"name": "gaussian", "d": 6}, "target": {"name": "hermite", "monomial": {0: 2}}}
    )


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("param, outputs", [("sp", 1), ("mup", 1), ("ntk", 3)])
def test_the_fused_inference_pass_is_the_forward_pass(bias, param, outputs):
    model = _stack(3, bias=bias, param=param, outputs=outputs)
    x = torch.randn(3, 200, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    got = model.inference(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    doubled = _stack(3, bias=bias, param=param, outputs=outputs, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(doubled.inference(x.double()), doubled(x.double()), rtol=1e-13, atol=1e-13)


def test_a_member_infers_the_same_bits_alone_and_in_a_stack():
    stack, alone = _stack(4, seed=0), _stack(1, seed=2)  # member 2 of the stack, built alone
    x = torch.randn(1000, 6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(stack.inference(x.expand(4, -1, -1))[2], alone.inference(x.unsqueeze(0))[0])


def test_metrics_do_not_depend_on_the_chunk_size_bit_for_bit():
    model = _stack(2)
    x = torch.randn(5000, 6, generator=torch.Generator().manual_seed(4))
    y = torch.randn(5000, 1, generator=torch.Generator().manual_seed(5))
    results = [evaluate(model, [fixed_source(x, y)] * 2, METRICS, chunk=c) for c in (BLOCK, 3 * BLOCK, 4096, 7, None)]
    for other in results[1:]:
        assert other == results[0]


@pytest.mark.parametrize("shared", [True, False])
def test_metrics_gathered_over_many_passes_equal_those_of_each_pass(shared, monkeypatch):
    """The metrics of several forward passes are computed at once (``_METRIC_ELEMENTS`` outputs):
    the same bits as one update per pass, for shared and distinct sets, coef included."""
    import learnlab.train._evaluation as evaluation

    model = _stack(3, outputs=1)
    g = torch.Generator().manual_seed(8)
    sets = [(torch.randn(3001, 6, generator=g), torch.randn(3001, 1, generator=g)) for _ in range(3)]
    sources = [fixed_source(*sets[0])] * 3 if shared else [fixed_source(x, y) for x, y in sets]
    components = [[("h0", lambda x: x[:, 0]), ("h1", lambda x: x[:, 1] ** 2 - 1)]] * 3
    metrics = METRICS + ["coef"]
    results = []
    for elements in (1, 700, 1 << 16):  # one update per pass, a few passes, the whole set
        monkeypatch.setattr(evaluation, "_METRIC_ELEMENTS", elements)
        results.append(evaluate(model, sources, metrics, components=components, chunk=BLOCK))
    assert "coef/h1" in results[0]
    for other in results[1:]:
        assert other == results[0]


def test_members_sharing_a_set_get_what_each_gets_with_its_own_copy():
    model = _stack(3)
    x = torch.randn(3000, 6, generator=torch.Generator().manual_seed(6))
    y = torch.randn(3000, 1, generator=torch.Generator().manual_seed(7))
    shared = evaluate(model, [fixed_source(x, y)] * 3, METRICS)
    copies = [fixed_source(x.clone(), y.clone()) for _ in range(3)]
    assert evaluate(model, copies, METRICS) == shared
    assert copies[1].data[0] is copies[0].data[0]  # found equal: one copy kept
    y2 = y.clone()
    y2[17] += 1
    different = [fixed_source(x, y), fixed_source(x, y2), fixed_source(x, y)]
    got = evaluate(model, different, ["mse"])
    assert got["mse"][0] == shared["mse"][0] and got["mse"][1] != shared["mse"][1]


def test_a_streamed_set_drawn_once_equals_the_set_streamed_chunk_by_chunk(monkeypatch):
    task = _task()
    model = _stack(2)
    kept = [streamed_source(task, 3 * CHUNK + 100, 11, dtype=torch.float32, device="cpu") for _ in range(2)]
    assert kept[0].cacheable
    first = evaluate(model, kept, METRICS)
    assert kept[0].data is not None and kept[1].data is kept[0].data  # drawn once, for both members
    assert evaluate(model, kept, METRICS) == first
    import learnlab.train._evaluation as evaluation

    monkeypatch.setattr(evaluation, "CACHE_BYTES", 0)  # too large to keep: streamed every time
    streamed = [streamed_source(task, 3 * CHUNK + 100, 11, dtype=torch.float32, device="cpu") for _ in range(2)]
    assert not streamed[0].cacheable
    assert evaluate(model, streamed, METRICS) == first
    assert streamed[0].data is None
    other_seed = [kept[0], streamed_source(task, 3 * CHUNK + 100, 12, dtype=torch.float32, device="cpu")]
    assert evaluate(model, other_seed, ["mse"])["mse"][1] != first["mse"][1]


def test_the_chunk_keeps_the_working_set_cache_sized():
    assert chunk_rows(_stack(1), 1, "cpu") == 1024  # capped
    wide = MLP(6, 1024, 1, 1, generators=[torch.Generator().manual_seed(0)] * 8)
    assert chunk_rows(wide, 8, "cpu") == (16 << 20) // (8 * 1024 * 4)  # one layer's activations: 16 MiB
    doubled = MLP(6, 1024, 1, 1, generators=[torch.Generator().manual_seed(0)] * 8, dtype=torch.float64)
    assert chunk_rows(doubled, 8, "cpu") == (16 << 20) // (8 * 1024 * 8)
    wider = MLP(6, 4096, 1, 1, generators=[torch.Generator().manual_seed(0)] * 16)
    assert chunk_rows(wider, 16, "cpu") == BLOCK  # never below one block of the metrics' sums
    assert chunk_rows(wider, 16, "cuda") > BLOCK


def test_pass_rows_keep_the_candidate_fastest_per_row(monkeypatch):
    monkeypatch.setattr(eval_rows, "_TUNED", {})
    model = _stack(2)
    default = chunk_rows(model, 2, "cpu")
    clock = iter(range(1000))
    monkeypatch.setattr(eval_rows.time, "perf_counter", lambda: float(next(clock)))  # every pass: 1 s
    rows = eval_rows.PassRows(model, 2, "cpu", n=64 * default)
    assert rows.tuning and rows.largest == 2 * default
    seen = []
    while rows.tuning:
        r = rows.next()
        seen.append(r)
        rows.timed(r, eval_rows.time.perf_counter())
    block = eval_rows._WARMUP + eval_rows._TIMED
    assert seen == [default] * block + [default // 2] * block + [2 * default] * block
    assert rows.next() == 2 * default  # the same time per pass: the most rows per second
    assert eval_rows.tuned_rows(model, 2, "cpu") == 2 * default  # kept for later evaluations
    assert not eval_rows.PassRows(model, 2, "cpu", n=64 * default).tuning
    assert eval_rows.PassRows(_stack(3), 3, "cpu", n=64 * default).tuning  # another stack: its own
    assert not eval_rows.PassRows(_stack(3), 3, "cpu", n=default).tuning  # a small set is not tuned
    assert not eval_rows.PassRows(_stack(3), 3, "cpu", n=64 * default, fixed=BLOCK).tuning


def test_one_interrupted_pass_does_not_decide_the_rows(monkeypatch):
    """Each candidate is judged by its mean time per row without its slowest pass: one pass the
    machine stalled (50x) does not make the fastest candidate lose, as it would by the total."""
    monkeypatch.setattr(eval_rows, "_TUNED", {})
    monkeypatch.setattr(eval_rows.time, "perf_counter", lambda: 0.0)  # a pass begun at -s lasted s
    model = _stack(2)
    default = chunk_rows(model, 2, "cpu")
    seconds_per_pass = {default: 1.0, default // 2: 1.0, 2 * default: 2.4}  # per row, the default is fastest
    rows = eval_rows.PassRows(model, 2, "cpu", n=64 * default)
    stalled = False
    while rows.tuning:
        r = rows.next()
        seconds = seconds_per_pass[r]
        if r == default and len(rows.times.get(default, [])) == 3 and not stalled:
            seconds, stalled = 50.0, True
        rows.timed(r, -seconds)
    assert stalled and rows.next() == default


def test_a_tuned_evaluation_has_the_bits_of_any_fixed_chunk(monkeypatch):
    monkeypatch.setattr(eval_rows, "_TUNED", {})
    monkeypatch.setattr(eval_rows, "_CPU_BYTES", 2 * BLOCK * 96 * 4 * 2)  # default: 2 blocks for 2 members
    model = _stack(2, outputs=3)
    g = torch.Generator().manual_seed(5)
    n = 50 * 2 * BLOCK + 37
    x, y = torch.randn(n, 6, generator=g), torch.randn(n, 3, generator=g)
    sources = [fixed_source(x, y), fixed_source(x + 1, y)]
    assert eval_rows.PassRows(model, 2, "cpu", n).tuning
    tuned = evaluate(model, sources, METRICS)
    assert len(eval_rows._TUNED) == 1  # the tuning ended within the set (42 default passes' rows)
    assert eval_rows.tuned_rows(model, 2, "cpu") in (BLOCK, 2 * BLOCK, 4 * BLOCK)
    for chunk in (BLOCK, 3 * BLOCK, 4096):
        assert evaluate(model, sources, METRICS, chunk=chunk) == tuned


def test_distinct_sets_are_kept_only_while_they_fit_together(monkeypatch):
    import learnlab.train._evaluation as evaluation

    task, model = _task(), _stack(2)

    def sources():
        return [streamed_source(task, 2 * CHUNK, seed, dtype=torch.float32, device="cpu") for seed in (1, 2)]

    kept = sources()
    expected = evaluate(model, kept, METRICS)
    assert all(s.data is not None for s in kept)  # both fit the budget together
    one = kept[0].nbytes
    monkeypatch.setattr(evaluation, "CACHE_BYTES", one + one // 2)  # each fits alone, not both
    streamed = sources()
    assert streamed[0].cacheable
    assert evaluate(model, streamed, METRICS) == expected
    assert all(s.data is None for s in streamed)
