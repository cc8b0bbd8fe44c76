"""PyTorch interop: online batches across DataLoader workers, map-style fixed datasets."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from learnlab.tasks import FixedDataset, OnlineBatches, make_task, torch_dataset

ONLINE = {"inputs": {"name": "gaussian", "d": 6}, "target": {"name": "hermite", "monomial": {0: 2}}, "noise": 0.1}


def _rows(batches):
    return [tuple(x.flatten().tolist()) for x, _ in batches]


def test_two_workers_yield_distinct_reproducible_batches_equal_to_the_serial_stream():
    task = make_task(ONLINE)
    ds = torch_dataset(task, seed=3, batch_size=32, batches=12)
    assert isinstance(ds, OnlineBatches) and len(ds) == 12
    two = list(DataLoader(ds, batch_size=None, num_workers=2))
    again = list(DataLoader(ds, batch_size=None, num_workers=2))
    serial = list(DataLoader(ds, batch_size=None, num_workers=0))
    assert len(two) == 12 and len(set(_rows(two))) == 12, "no batch is duplicated across workers"
    for (x, y), (x2, y2), (xs, ys) in zip(two, again, serial):
        torch.testing.assert_close(x, x2, rtol=0, atol=0)
        torch.testing.assert_close(y, y2, rtol=0, atol=0)
        torch.testing.assert_close(x, xs, rtol=0, atol=0)  # the same stream whatever the worker count
        torch.testing.assert_close(y, ys, rtol=0, atol=0)
    x0, y0 = two[0]
    clean = task.target(x0)
    assert 0.05 < (y0 - clean).std().item() < 0.2, "training batches carry label noise"
    other = list(DataLoader(torch_dataset(task, seed=4, batch_size=32, batches=2), batch_size=None))
    assert not torch.equal(other[0][0], x0)


def test_endless_stream_has_no_length_but_iterates():
    ds = OnlineBatches(make_task(ONLINE), 8, seed=0)
    with pytest.raises(TypeError, match="endless"):
        len(ds)
    it = iter(ds)
    a, b = next(it), next(it)
    torch.testing.assert_close(a[0], ds.batch(0)[0], rtol=0, atol=0)
    assert not torch.equal(a[0], b[0])


def test_fixed_tasks_give_map_style_datasets():
    task = make_task({**ONLINE, "n_train": 40, "n_test": 16})
    train = torch_dataset(task, seed=1)
    test = torch_dataset(task, "test", seed=1)
    assert isinstance(train, FixedDataset) and len(train) == 40 and len(test) == 16
    x, y = task.train_sample(torch.Generator().manual_seed(1))
    torch.testing.assert_close(train[5], (x[5], y[5]), rtol=0, atol=0)
    xt, yt = test[3]
    torch.testing.assert_close(yt, task.target(xt.unsqueeze(0))[0], rtol=0, atol=0)  # noise-free
    loaded = torch.cat([b[0] for b in DataLoader(train, batch_size=16, shuffle=False)])
    torch.testing.assert_close(loaded, x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown split"):
        torch_dataset(task, "val")
