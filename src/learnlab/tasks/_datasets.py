"""Real datasets read from local files (never downloaded): where they are and how to parse them.

- ``mnist``, ``fashion_mnist``: the four official IDX files (LeCun et al., 1998; Xiao et al.,
  2017), gzipped or not.
- ``cifar10``: the official "python version" batches (Krizhevsky, 2009), read with an
  unpickler that accepts only numpy arrays and plain containers.
- ``digits``: scikit-learn's shipped copy of the UCI 8x8 digits (no files needed).
- ``mnist1d``: generated locally by the ``mnist1d`` package (Greydanus, 2020).

Files are looked for in ``task.data_dir``, else in ``$LEARNLAB_DATA``, in the folder itself
and in the usual sub-folders (``<root>/<name>``, torchvision's ``MNIST/raw`` ...).
"""

from __future__ import annotations

import functools
import gzip
import importlib
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

__all__ = [
    "DatasetInfo",
    "DATASETS",
    "DatasetFilesError",
    "find_files",
    "read_idx",
    "load_cifar_batch",
    "load_raw",
    "ENV_VAR",
]

ENV_VAR = "LEARNLAB_DATA"
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: its classes, official split sizes, files and where they may sit."""

    name: str
    summary: str
    classes: int
    train_size: int
    test_size: int
    shape: tuple[int, ...]  # one example: (channels, height, width) or (length,)
    files: tuple[str, ...] = ()  # official file names (IDX files may also end in .gz)
    subdirs: tuple[str, ...] = ()  # folders under a data root where the files may be
    extra: str | None = None  # optional dependency (pip extra) it needs


DATASETS = {
    "mnist": DatasetInfo(
        "mnist",
        "handwritten digits, 28x28 grayscale (LeCun et al., 1998)",
        10,
        60000,
        10000,
        (1, 28, 28),
        _IDX_FILES,
        ("", "mnist", "mnist/raw", "MNIST/raw", "MNIST"),
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        "Zalando clothing, 28x28 grayscale (Xiao et al., 2017)",
        10,
        60000,
        10000,
        (1, 28, 28),
        _IDX_FILES,
        ("", "fashion_mnist", "fashion-mnist", "FashionMNIST/raw", "FashionMNIST"),
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        "32x32 colour images, 10 classes (Krizhevsky, 2009)",
        10,
        50000,
        10000,
        (3, 32, 32),
        _CIFAR_FILES,
        ("", "cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py"),
    ),
    "digits": DatasetInfo(
        "digits",
        "UCI 8x8 digits shipped with scikit-learn; train = first 1200, test = last 597",
        10,
        1200,
        597,
        (1, 8, 8),
        extra="datasets",
    ),
    "mnist1d": DatasetInfo(
        "mnist1d",
        "MNIST-1D, 40-sample 1-d signals generated locally (Greydanus, 2020)",
        10,
        4000,
        1000,
        (40,),
        extra="mnist1d",
    ),
}


class DatasetFilesError(ValueError):
    """A dataset's files are missing or malformed."""


def _roots(data_dir: str | os.PathLike | None) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    env = os.environ.get(ENV_VAR)
    return [Path(env).expanduser()] if env else []


def _present(folder: Path, name: str, gz_ok: bool) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz") if gz_ok else (folder / name,):
        if candidate.is_file():
            return candidate
    return None


def find_files(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of dataset ``name``'s official files: {official name: path}.

    Raises:
        DatasetFilesError: listing the expected file names and every folder looked in.
    """
    info = DATASETS[name]
    gz_ok = info.files == _IDX_FILES
    roots = _roots(data_dir)
    looked = []
    for root in roots:
        for sub in info.subdirs:
            folder = root / sub if sub else root
            looked.append(str(folder))
            paths = {f: _present(folder, f, gz_ok) for f in info.files}
            if all(paths.values()):
                return cast("dict[str, Path]", paths)  # every file present
    expected = ", ".join(f + ("[.gz]" if gz_ok else "") for f in info.files)
    if not roots:
        where = f"no data folder is set: set task.data_dir or the {ENV_VAR} environment variable"
    else:
        where = "looked in: " + ", ".join(looked)
    raise DatasetFilesError(
        f"dataset {name!r} needs the files {expected} in one folder; {where}. "
        "learnlab never downloads: copy the official files there (or point task.data_dir at them)"
    )


# IDX type codes (LeCun's format): 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (gzipped if its name ends in .gz): magic 0 0 type ndim, big-endian dims, data.

    Raises:
        DatasetFilesError: if the header or the size is wrong.
    """
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    else:
        raw = path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetFilesError(
            f"{path} is not an IDX file (bad magic number {raw[:4]!r}; expected 00 00 <type> <ndim>)"
        )
    ndim = raw[3]
    dims = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    start = 4 + 4 * ndim
    expected = start + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetFilesError(f"{path}: IDX header says {dims} values ({expected} bytes), the file has {len(raw)}")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other global (no code runs)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed (only numpy arrays and plain containers)"
            )
        if module == "numpy.core.multiarray":  # numpy >= 2 moved it; avoid the deprecated alias
            module = "numpy._core.multiarray" if importlib.util.find_spec("numpy._core") else module
        return getattr(importlib.import_module(module), name)


def load_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: (images (n, 3, 32, 32) uint8, labels (n,) int64).

    Raises:
        DatasetFilesError: if the file holds anything but plain containers and arrays
            (a malicious pickle is refused before any of its code can run) or lacks the keys.
    """
    try:
        with open(path, "rb") as fh:
            batch = _ArraysOnly(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DatasetFilesError(f"refused to load {path}: {exc}") from None
    if not isinstance(batch, dict):
        raise DatasetFilesError(f"{path}: expected a dict with b'data' and b'labels', got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetFilesError(f"{path}: expected 'data' as a (n, 3072) uint8 array")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise DatasetFilesError(f"{path}: {data.shape[0]} images but {labels.shape} labels")
    return data.reshape(-1, 3, 32, 32), labels


def load_raw(name: str, data_dir: str | os.PathLike | None = None):
    """Dataset ``name`` as (x_train, y_train, x_test, y_test, scale), cached per process.

    x keeps the stored dtype (uint8 images; divide by ``scale`` for [0, 1]) with shape
    (n, *info.shape); y are int64 class indices. Only the chosen examples are converted
    to floats later, so a subset of CIFAR-10 never costs the whole split in float32.
    """
    root = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    root = str(Path(root).expanduser().resolve()) if root and name in ("mnist", "fashion_mnist", "cifar10") else None
    return _load_raw_cached(name, root)


@functools.lru_cache(maxsize=4)
def _load_raw_cached(name: str, root: str | None):
    if name in ("mnist", "fashion_mnist"):
        paths = find_files(name, root)
        xs = [read_idx(paths[f]) for f in _IDX_FILES]
        for images, labels, f in ((xs[0], xs[1], "train"), (xs[2], xs[3], "t10k")):
            if images.ndim != 3 or labels.shape != (images.shape[0],):
                raise DatasetFilesError(f"{name} {f} files: {images.shape} images but {labels.shape} labels")
        return xs[0][:, None], xs[1].astype(np.int64), xs[2][:, None], xs[3].astype(np.int64), 255.0
    if name == "cifar10":
        paths = find_files(name, root)
        train = [load_cifar_batch(paths[f]) for f in _CIFAR_FILES[:5]]
        tx, ty = load_cifar_batch(paths["test_batch"])
        return np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train]), tx, ty, 255.0
    if name == "digits":
        return _digits()
    if name == "mnist1d":
        return _mnist1d()
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")


def _need(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"this dataset needs the optional package {module!r}: pip install 'learnlab[{extra}]'"
        ) from None


def _digits():
    datasets = _need("sklearn.datasets", "datasets")
    bunch = datasets.load_digits()  # the copy shipped inside scikit-learn: no network
    x = bunch.images.astype(np.uint8)[:, None]  # pixel values 0..16
    y = bunch.target.astype(np.int64)
    return x[:1200], y[:1200], x[1200:], y[1200:], 16.0


def _mnist1d():
    data_module = _need("mnist1d.data", "mnist1d")
    import random

    state, np_state = random.getstate(), np.random.get_state()
    try:  # make_dataset seeds the global RNGs; keep the caller's streams untouched
        data = data_module.make_dataset(data_module.get_dataset_args())
    finally:
        random.setstate(state)
        np.random.set_state(np_state)
    return (
        data["x"].astype(np.float32),
        data["y"].astype(np.int64),
        data["x_test"].astype(np.float32),
        data["y_test"].astype(np.int64),
        1.0,
    )
