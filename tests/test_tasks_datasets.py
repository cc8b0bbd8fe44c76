"""Real datasets from small files written here in the official formats; nothing downloads."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from learnlab.tasks import DatasetFilesError, TaskSpec, make_task, read_idx
from learnlab.tasks._datasets import load_cifar_batch

RNG = np.random.default_rng(0)


def _write_idx(path, array: np.ndarray, gz: bool) -> None:
    """IDX (LeCun): 0, 0, type 0x08 (ubyte), ndim, big-endian uint32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def _mnist_dir(root, n_train=60, n_test=30, gz=False):
    images = {"train": RNG.integers(0, 256, (n_train, 28, 28)), "t10k": RNG.integers(0, 256, (n_test, 28, 28))}
    labels = {"train": np.arange(n_train) % 10, "t10k": np.arange(n_test) % 10}
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        _write_idx(root / f"{split}-images-idx3-ubyte", images[split], gz)
        _write_idx(root / f"{split}-labels-idx1-ubyte", labels[split], gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_roundtrip(tmp_path, gz):
    array = RNG.integers(0, 256, (4, 3, 2))
    _write_idx(tmp_path / "a-idx3-ubyte", array, gz)
    got = read_idx(tmp_path / ("a-idx3-ubyte.gz" if gz else "a-idx3-ubyte"))
    np.testing.assert_array_equal(got, array)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03")
    with pytest.raises(DatasetFilesError, match="not an IDX"):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_task_from_idx_files(tmp_path, gen, gz):
    images, labels = _mnist_dir(tmp_path / "MNIST" / "raw", gz=gz)
    task = make_task({"dataset": "mnist", "data_dir": str(tmp_path)})
    assert task.d == 784 and task.outputs == 10 and not task.online
    x, y = task.train_sample(gen(0), dtype=torch.float64)  # n_train null: the whole split, in order
    np.testing.assert_allclose(x.numpy(), images["train"].reshape(60, -1) / 255, rtol=1e-15)
    np.testing.assert_array_equal(y.argmax(1).numpy(), labels["train"])
    xt, yt = task.test_sample(gen(1), dtype=torch.float64)  # the official test split, never training data
    np.testing.assert_allclose(xt.numpy(), images["t10k"].reshape(30, -1) / 255, rtol=1e-15)


def test_class_groups_subsets_center_normalize(tmp_path, gen):
    images, labels = _mnist_dir(tmp_path / "fashion_mnist")
    spec = {
        "dataset": "fashion_mnist",
        "data_dir": str(tmp_path),
        "classes": [[0], [1, 2]],
        "n_train": 10,
        "n_test": 5,
        "center": True,
        "normalize": True,
    }
    task = make_task(spec)
    x, y = task.train_sample(gen(2), dtype=torch.float64)
    keep = np.isin(labels["train"], [0, 1, 2])
    raw = images["train"][keep].reshape(keep.sum(), -1) / 255
    centered = raw - raw.mean(0)
    unit = centered / np.linalg.norm(centered, axis=1, keepdims=True)
    rows = [int(np.flatnonzero((np.abs(unit - r) < 1e-12).all(1))[0]) for r in x.numpy()]
    assert len(set(rows)) == 10, "a subset without repeats"
    np.testing.assert_allclose(y[:, 0].numpy(), np.where(labels["train"][keep][rows] == 0, -1.0, 1.0))
    torch.testing.assert_close(task.train_sample(gen(2), dtype=torch.float64), (x, y), rtol=0, atol=0)
    assert not torch.equal(task.train_sample(gen(3), dtype=torch.float64)[0], x)
    xt, _ = task.test_sample(gen(4), dtype=torch.float64)
    torch.testing.assert_close(xt.norm(dim=1), torch.ones(5, dtype=torch.float64))


def _cifar_dir(root, n=20):
    root.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = RNG.integers(0, 256, (n, 3072)).astype(np.uint8)
        labels = list(RNG.integers(0, 10, n))
        labels = [int(v) for v in labels]
        with open(root / name, "wb") as fh:  # the official batches are protocol-2 pickles of dicts
            pickle.dump(
                {b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"f"] * n}, fh, protocol=2
            )
        batches[name] = (data, labels)
    return batches


def test_cifar10_task_and_grayscale(tmp_path, gen):
    batches = _cifar_dir(tmp_path / "cifar-10-batches-py")
    color = make_task({"dataset": "cifar10", "data_dir": str(tmp_path)})
    x, y = color.train_sample(gen(0), dtype=torch.float64)
    train = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_allclose(x.numpy(), train / 255, rtol=1e-15)
    assert x.shape == (100, 3072)
    gray = make_task({"dataset": "cifar10", "data_dir": str(tmp_path), "grayscale": True})
    xt, _ = gray.test_sample(gen(0), dtype=torch.float64)
    test = batches["test_batch"][0].reshape(20, 3, 1024) / 255
    np.testing.assert_allclose(xt.numpy(), test.mean(1), rtol=1e-14)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_cifar_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(DatasetFilesError, match="not allowed"):
        load_cifar_batch(path)
    assert not (tmp_path / "pwned").exists(), "the pickle's code must never run"


def test_missing_files_error_lists_names_and_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("LEARNLAB_DATA", raising=False)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte") as info:
        TaskSpec.model_validate({"dataset": "mnist", "data_dir": str(tmp_path)})
    assert str(tmp_path / "MNIST" / "raw") in str(info.value) and "never downloads" in str(info.value)
    with pytest.raises(ValueError, match="LEARNLAB_DATA"):
        TaskSpec.model_validate({"dataset": "cifar10"})
    _mnist_dir(tmp_path / "mnist")
    monkeypatch.setenv("LEARNLAB_DATA", str(tmp_path))
    assert make_task({"dataset": "mnist", "n_test": 7}).test_sample(torch.Generator().manual_seed(0))[0].shape == (
        7,
        784,
    )


def test_digits_load_offline_from_scikit_learn(gen):
    from sklearn.datasets import load_digits

    task = make_task({"dataset": "digits", "binarize": True, "n_train": 100})
    assert task.d == 64 and task.outputs == 1 and task.n_test is None
    x, y = task.train_sample(gen(0), dtype=torch.float64)
    xt, yt = task.test_sample(gen(1), dtype=torch.float64)
    bunch = load_digits()
    ref_test = bunch.data[1200:] / 16
    np.testing.assert_allclose(xt.numpy(), ref_test, rtol=1e-15)  # last 597: the fixed test split
    np.testing.assert_allclose(yt[:, 0].numpy(), np.where(bunch.target[1200:] < 5, -1.0, 1.0))
    train_rows = {tuple(r) for r in (bunch.data[:1200] / 16).round(12)}
    assert all(tuple(r) in train_rows for r in x.numpy().round(12))


@pytest.mark.slow
def test_mnist1d_is_generated_locally(gen):
    pytest.importorskip("mnist1d")
    state = np.random.get_state()
    task = make_task({"dataset": "mnist1d", "n_train": 50, "n_test": 20})
    x, y = task.train_sample(gen(0), dtype=torch.float64)
    assert x.shape == (50, 40) and y.shape == (50, 10) and y.sum(1).eq(1).all()
    assert np.array_equal(np.random.get_state()[1], state[1]), "global numpy RNG left untouched"
