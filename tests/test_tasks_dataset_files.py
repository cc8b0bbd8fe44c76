"""Dataset files are checked when a spec is planned (``learnlab data fetch``: test_tasks_dataset_fetch.py).

Every file is written here in the official formats (IDX, CIFAR-10 python batches) and then
damaged in one way; each damage must stop ``learnlab run SPEC --dry-run`` with exit 2 and a
message naming the file.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import shlex
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.tasks import DatasetFilesError, check_files, read_idx
from learnlab.tasks._datasets import find_files

RNG = np.random.default_rng(0)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


# --- files in the official formats ------------------------------------------------------------


def _idx(array: np.ndarray, dims: tuple[int, ...] | None = None, code: int = 0x08) -> bytes:
    """IDX (LeCun): 0, 0, type code, ndim, big-endian uint32 dims (``dims`` may lie), the bytes."""
    dims = array.shape if dims is None else dims
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + array.astype(np.uint8).tobytes()


def _mnist(folder: Path, gz: bool = True, n_train: int = 20, n_test: int = 10, **contents: bytes) -> dict[str, Path]:
    """A valid MNIST set in ``folder``; ``contents`` replaces a file's bytes (before gzip),
    keyed train_images, train_labels, t10k_images, t10k_labels."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        valid = {"images": _idx(RNG.integers(0, 256, (n, 28, 28))), "labels": _idx(np.arange(n) % 10)}
        for kind, data in valid.items():
            name = f"{split}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
            path = folder / (name + ".gz" if gz else name)
            data = contents.get(f"{split}_{kind}", data)
            path.write_bytes(gzip.compress(data) if gz else data)
            paths[name] = path
    return paths


def _batch(n: int = 4, data: np.ndarray | None = None, labels: list | None = None) -> dict:
    data = RNG.integers(0, 256, (n, 3072)).astype(np.uint8) if data is None else data
    labels = [int(v) for v in RNG.integers(0, 10, n)] if labels is None else labels
    return {b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"f"] * n}


def _cifar(folder: Path, **batches) -> dict[str, Path]:
    """A valid CIFAR-10 set (protocol-2 pickles of dicts, as the official ones); ``batches``
    replaces a batch's object."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in CIFAR_FILES:
        with open(folder / name, "wb") as fh:
            pickle.dump(batches.get(name, _batch()), fh, protocol=2)
    return {name: folder / name for name in CIFAR_FILES}


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


class _Evil:
    """A pickle that runs a shell command when loaded by a plain unpickler."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


BOMB_CLAIM = (20, 28, 28)  # what the bomb's header promises: 15,680 bytes
BOMB_BYTES = 1 << 30  # what it expands to


@pytest.fixture(scope="session")
def bomb(tmp_path_factory) -> Path:
    """A 1 GiB gzip bomb (~4.6 MB on disk) whose IDX header promises 20 images; written in 1 MiB
    chunks so that making it costs no more memory than checking it should."""
    path = tmp_path_factory.mktemp("bomb") / "train-images-idx3-ubyte.gz"
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    zeros = bytes(1 << 20)
    with open(path, "wb") as fh:
        fh.write(compressor.compress(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *BOMB_CLAIM)))
        for _ in range(BOMB_BYTES // len(zeros)):
            fh.write(compressor.compress(zeros))
        fh.write(compressor.flush())
    return path


# --- plan-time checks: every damage exits 2 naming the file -------------------------------------


def _dry_run(write_spec, tiny_spec, task: dict):
    tiny_spec["task"] = {**task, "n_train": 4, "n_test": 4}
    result = CliRunner().invoke(app, ["run", str(write_spec(tiny_spec)), "--dry-run"])
    return result


def _images(n: int, h: int = 28, w: int = 28) -> np.ndarray:
    return RNG.integers(0, 256, (n, h, w))


# name -> (gzipped?, the set's file contents, damage done after writing, bad file, what the message says)
IDX_CASES = {
    "bad magic": (False, {"train_images": b"\x08\x00" + _idx(_images(20))[2:]}, None, 0, "not an IDX file"),
    "header claims more": (
        False,
        {"train_images": _idx(_images(20), dims=(21, 28, 28))},
        None,
        0,
        "truncated: the header promises (21, 28, 28) uint8 values (16464 bytes), the file has 15680",
    ),
    "header claims fewer": (
        True,
        {"train_images": _idx(_images(20), dims=(19, 28, 28))},
        None,
        0,
        "longer than its header says",
    ),
    "truncated body": (False, {}, lambda p: _cut(p[0], 0.9), 0, "truncated: the header promises (20, 28, 28)"),
    "header cut short": (False, {"t10k_labels": b"\x00\x00\x08\x01\x00"}, None, 3, "the IDX header ends early"),
    "truncated gzip": (True, {}, lambda p: _cut(p[0], 0.5), 0, "damaged gzip stream (Compressed file ended"),
    "gzip CRC flipped": (True, {}, lambda p: _flip(p[1], -8), 1, "damaged gzip stream (CRC check failed"),
    "deflate byte flipped": (True, {}, lambda p: _flip(p[2], -100), 2, "damaged gzip stream"),
    "not gzip at all": (True, {}, lambda p: p[3].write_bytes(b"plain text"), 3, "damaged gzip stream"),
    "27x28 images": (
        False,
        {"t10k_images": _idx(_images(10, 27, 28))},
        None,
        2,
        "holds (10, 27, 28) uint8 values; expected (n, 28, 28) uint8",
    ),
    "int32 images": (
        True,
        {"train_images": _idx(_images(20), code=0x0C)},
        None,
        0,
        "holds (20, 28, 28) int32 values; expected (n, 28, 28) uint8",
    ),
    "more images than the official split": (
        False,
        {"t10k_images": _idx(np.zeros(0), dims=(10001, 28, 28))},
        None,
        2,
        "holds 10001 images, more than the official split's 10000",
    ),
    "labels out of range": (
        True,
        {"train_labels": _idx(np.array([0, 1, 2, 10, 4, 5, 6, 255] + [1] * 12))},
        None,
        1,
        "2 of 20 labels are outside [0, 10) (the first at index 3: 10)",
    ),
    "labels 2-d": (False, {"t10k_labels": _idx(np.zeros((10, 1)))}, None, 3, "expected (n,) uint8 labels"),
    "labels fewer than images": (
        False,
        {"train_labels": _idx(np.arange(19) % 10)},
        None,
        1,
        "19 labels but train-images-idx3-ubyte holds 20 images",
    ),
}


@pytest.mark.parametrize("case", list(IDX_CASES))
def test_damaged_idx_file_stops_the_plan_naming_it(case, tmp_path, write_spec, tiny_spec):
    gz, contents, damage, bad, says = IDX_CASES[case]
    paths = list(_mnist(tmp_path / "data" / "mnist", gz=gz, **contents).values())
    if damage is not None:
        damage(paths)
    start = time.perf_counter()
    result = _dry_run(write_spec, tiny_spec, {"dataset": "mnist", "data_dir": str(tmp_path / "data")})
    assert time.perf_counter() - start < 5
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = next(line for line in result.output.splitlines() if "task.data_dir:" in line)
    assert f"task.data_dir: {paths[bad]}: " in line, result.output  # <file>: <what is wrong>; <what to do>
    assert says in line, result.output
    assert line.endswith(
        f"; delete it and fetch the official files: learnlab data fetch mnist --to {tmp_path / 'data'}"
    )
    assert "1 problem" in result.output


def test_valid_sets_pass_and_every_damaged_file_is_listed(tmp_path, write_spec, tiny_spec, monkeypatch):
    for gz in (False, True):
        _mnist(tmp_path / f"ok{gz}" / "MNIST" / "raw", gz=gz)
        result = _dry_run(write_spec, tiny_spec, {"dataset": "mnist", "data_dir": str(tmp_path / f"ok{gz}")})
        assert result.exit_code == 0, result.output
    _cifar(tmp_path / "cifar" / "cifar-10-batches-py")
    monkeypatch.setenv("LEARNLAB_DATA", str(tmp_path / "cifar"))
    assert _dry_run(write_spec, tiny_spec, {"dataset": "cifar10"}).exit_code == 0
    paths = _mnist(
        tmp_path / "bad",
        train_images=b"junk",
        t10k_labels=_idx(np.full(10, 12)),
    )
    result = _dry_run(write_spec, tiny_spec, {"dataset": "fashion_mnist", "data_dir": str(tmp_path / "bad")})
    assert result.exit_code == 2 and "2 problems" in result.output, result.output
    assert f"{paths['train-images-idx3-ubyte']}: not an IDX file" in result.output
    assert f"{paths['t10k-labels-idx1-ubyte']}: 10 of 10 labels are outside [0, 10)" in result.output
    assert "learnlab data fetch fashion_mnist --to" in result.output


CIFAR_CASES = {
    "label 99": (
        {"data_batch_3": _batch(labels=[1, 2, 99, 3])},
        "1 of 4 labels are outside [0, 10) (the first at index 2: 99)",
    ),
    "negative label": ({"test_batch": _batch(labels=[0, -1, 2, 3])}, "1 of 4 labels are outside [0, 10)"),
    "data (n, 3000)": (
        {"data_batch_1": _batch(data=np.zeros((4, 3000), np.uint8))},
        "expected 'data' as a (n, 3072) uint8 array, got a (4, 3000) uint8 array",
    ),
    "data float": (
        {"data_batch_2": _batch(data=np.zeros((4, 3072), np.float32))},
        "expected 'data' as a (n, 3072) uint8 array, got a (4, 3072) float32 array",
    ),
    "labels fewer than images": ({"data_batch_5": _batch(labels=[1, 2, 3])}, "4 images but labels of shape (3,)"),
    "labels not integers": ({"data_batch_4": _batch(labels=["a", "b", "c", "d"])}, "4 images but labels of shape (4,)"),
    "not a dict": ({"data_batch_4": [1, 2, 3]}, "expected a dict with b'data' and b'labels', got list"),
}


@pytest.mark.parametrize("case", list(CIFAR_CASES))
def test_damaged_cifar_batch_stops_the_plan_naming_it(case, tmp_path, write_spec, tiny_spec):
    batches, says = CIFAR_CASES[case]
    paths = _cifar(tmp_path / "cifar-10-batches-py", **batches)
    result = _dry_run(write_spec, tiny_spec, {"dataset": "cifar10", "data_dir": str(tmp_path)})
    assert result.exit_code == 2, result.output
    (bad,) = batches
    assert f"{paths[bad]}: {says}" in result.output, result.output
    assert f"learnlab data fetch cifar10 --to {tmp_path}" in result.output


def test_malicious_truncated_and_oversized_cifar_batches_are_refused_unrun(tmp_path, write_spec, tiny_spec):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    paths = _cifar(folder, data_batch_2={b"data": _Evil(marker), b"labels": [0]})
    _cut(paths["data_batch_4"], 0.5)
    with open(paths["test_batch"], "r+b") as fh:  # a sparse 65 MiB file: nothing of it is read
        fh.truncate(65 << 20)
    result = _dry_run(write_spec, tiny_spec, {"dataset": "cifar10", "data_dir": str(tmp_path)})
    assert result.exit_code == 2 and "3 problems" in result.output, result.output
    assert f"{paths['data_batch_2']}: refused to load: global 'posix.system' is not allowed" in result.output
    assert f"{paths['data_batch_4']}: refused to load" in result.output
    assert f"{paths['test_batch']}: 68157440 bytes, more than twice an official batch" in result.output
    assert not marker.exists(), "the pickle's code must never run"


def test_missing_files_name_the_fetch_command(tmp_path, monkeypatch, write_spec, tiny_spec):
    monkeypatch.delenv("LEARNLAB_DATA", raising=False)
    result = _dry_run(write_spec, tiny_spec, {"dataset": "mnist", "data_dir": str(tmp_path)})
    assert result.exit_code == 2
    assert f"learnlab never downloads during a run: get them with `learnlab data fetch mnist --to {tmp_path}`" in (
        result.output
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = _dry_run(write_spec, tiny_spec, {"dataset": "cifar10"})
    said = " ".join(result.output.split())
    assert f"get them with `learnlab data fetch cifar10` (into {tmp_path / 'cache/learnlab/data'}, where runs" in said
    assert "LEARNLAB_DATA" in said


def test_without_data_dir_runs_look_where_fetch_puts_the_files(tmp_path, monkeypatch):
    from learnlab.tasks._fetch import default_data_dir

    monkeypatch.delenv("LEARNLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = default_data_dir() / "mnist"
    folder.mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (folder / f"{name}.gz").write_bytes(b"")
    assert find_files("mnist")["t10k-labels-idx1-ubyte"] == folder / "t10k-labels-idx1-ubyte.gz"


# --- bounded memory and time: a gzip bomb, read_idx called directly, the cache -----------------


def test_gzip_bomb_is_refused_quickly_in_bounded_memory(tmp_path, bomb, write_spec, tiny_spec):
    """1 GiB of zeros behind a header promising 15,680 bytes: refused after reading 15,681."""
    _mnist(tmp_path / "ok")
    bad = _mnist(tmp_path / "bomb")["train-images-idx3-ubyte"]
    bad.write_bytes(bomb.read_bytes())
    script = (
        "import json, resource, sys, time\n"
        "from learnlab.tasks import DatasetFilesError, check_files\n"
        "check_files('mnist', sys.argv[1])  # a valid set first: every code path warm\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    check_files('mnist', sys.argv[2])\n"
        "    message = None\n"
        "except DatasetFilesError as exc:\n"
        "    message = str(exc)\n"
        "seconds = time.perf_counter() - start\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux\n"
        "print(json.dumps({'seconds': seconds, 'grew_kib': grew, 'message': message}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "ok"), str(tmp_path / "bomb")],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout.splitlines()[-1])
    assert info["message"].startswith(f"{bad}: longer than its header says: the header promises (20, 28, 28)")
    assert info["grew_kib"] < 32 * 1024, info  # the peak grew by < 32 MiB; expanded, it is 1024 MiB
    assert info["seconds"] < 1.0, info
    result = _dry_run(write_spec, tiny_spec, {"dataset": "mnist", "data_dir": str(tmp_path / "bomb")})
    assert result.exit_code == 2 and f"{bad}: longer than its header says" in result.output


def test_read_idx_alone_is_capped_and_names_the_file(tmp_path, bomb):
    tracemalloc.start()
    try:
        with pytest.raises(DatasetFilesError, match="longer than its header says") as info:
            read_idx(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB while refusing a 1 GiB bomb"
    assert str(info.value).startswith(f"{bomb}: ") and "replace it with an intact copy" in str(info.value)
    paths = _mnist(tmp_path, gz=True)
    _cut(paths["train-images-idx3-ubyte"], 0.5)
    with pytest.raises(DatasetFilesError, match=re.escape(f"{paths['train-images-idx3-ubyte']}: damaged gzip")):
        read_idx(paths["train-images-idx3-ubyte"])
    huge = tmp_path / "huge-idx3-ubyte"
    huge.write_bytes(_idx(np.zeros(0), dims=(2**32 - 1, 2**32 - 1, 2**32 - 1)))  # would be 2^96 bytes
    with pytest.raises(DatasetFilesError, match="truncated: the header promises"):
        read_idx(huge)  # compared with the file's size before anything is allocated
    labels = np.arange(7) % 10
    (tmp_path / "l-idx1-ubyte").write_bytes(_idx(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "l-idx1-ubyte"), labels)


def test_a_set_of_files_is_checked_once_until_it_changes(tmp_path, monkeypatch):
    import learnlab.tasks._datasets as datasets

    calls = []
    real = datasets.check_idx_images
    monkeypatch.setattr(datasets, "check_idx_images", lambda *a: calls.append(a[0]) or real(*a))
    paths = _mnist(tmp_path, gz=False, t10k_labels=_idx(np.full(10, 11)))
    for _ in range(3):  # a sweep of many runs validates its task each time: the files are read once
        with pytest.raises(DatasetFilesError, match="10 of 10 labels"):
            check_files("mnist", tmp_path)
    assert len(calls) == 2  # train and t10k images, once
    paths["t10k-labels-idx1-ubyte"].write_bytes(_idx(np.arange(10)))
    os.utime(paths["t10k-labels-idx1-ubyte"], ns=(1, 1))  # another mtime: checked again, now valid
    assert check_files("mnist", tmp_path) == paths
    assert len(calls) == 4
