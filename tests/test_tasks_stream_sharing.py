"""Members that share a data stream (same task, batch size and data seed) draw it once per step:
their stacked batches equal, bit for bit, those of streams of their own; a checkpoint saved while
they had streams of their own at different points splits the shared stream again."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from learnlab.tasks import BatchStream, make_task, next_stacked
from learnlab.train._member_state import save_member as _member_state
from learnlab.train._member_state import unshare_streams as _unshare_streams

ONLINE = {"inputs": {"name": "gaussian", "d": 5}, "target": {"name": "hermite", "monomial": {0: 1, 2: 2}}, "noise": 0.1}
OFFLINE = {**ONLINE, "n_train": 40}
PARITY = {"inputs": {"name": "hypercube", "d": 6}, "target": {"name": "parity", "indices": [[0, 1]]}, "noise": 0.2}


@pytest.mark.parametrize("section", [ONLINE, OFFLINE, PARITY], ids=["online", "offline", "parity-flips"])
def test_a_shared_stream_equals_streams_of_their_own(section):
    task = make_task(section)
    shared, other = (
        BatchStream(task, 8, torch.Generator().manual_seed(1)),
        BatchStream(task, 8, torch.Generator().manual_seed(2)),
    )
    own = [BatchStream(task, 8, torch.Generator().manual_seed(s)) for s in (1, 2, 1, 1)]
    order = [shared, other, shared, shared]  # members 0, 2 and 3 share one stream
    for _ in range(7):  # several offline epochs (5 batches each)
        x, y = next_stacked(order)
        expected = [s.next() for s in own]
        assert x.shape == (4, 8, task.d)
        for row, (ex, ey) in enumerate(expected):
            assert torch.equal(x[row], ex) and torch.equal(y[row], ey), row


def _member(stream):
    return SimpleNamespace(
        stream=stream,
        tracker=SimpleNamespace(state_dict=dict),
        loss0=None,
        artifacts={},
        history=SimpleNamespace(metrics={}, status="running", step=0, reason=None),
    )


@pytest.mark.parametrize("section", [ONLINE, OFFLINE], ids=["online", "offline"])
def test_states_saved_apart_split_a_shared_stream(section):
    task = make_task(section)
    behind, ahead = (BatchStream(task, 8, torch.Generator().manual_seed(3)) for _ in range(2))
    for _ in range(3):
        ahead.next()
    states = [_member_state(_member(s)) for s in (behind, ahead)]
    shared = BatchStream(task, 8, torch.Generator().manual_seed(3))
    members = [_member(shared), _member(shared)]
    _unshare_streams(members, states)
    assert members[0].stream is not members[1].stream
    for _ in range(4):
        for m, reference in zip(members, (behind, ahead)):
            x, y = m.stream.next()
            ex, ey = reference.next()
            assert torch.equal(x, ex) and torch.equal(y, ey)


def test_states_saved_together_keep_the_stream_shared():
    task = make_task(ONLINE)
    shared = BatchStream(task, 8, torch.Generator().manual_seed(3))
    members = [_member(shared), _member(shared)]
    states = [_member_state(m) for m in members]
    _unshare_streams(members, states)
    assert members[0].stream is members[1].stream
