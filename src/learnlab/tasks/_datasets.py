"""Real datasets read from local files (never downloaded): where they are and how to parse them.

- ``mnist``, ``fashion_mnist``: the four official IDX files (LeCun et al., 1998; Xiao et al.,
  2017), gzipped or not.
- ``cifar10``: the official "python version" batches (Krizhevsky, 2009), read with an
  unpickler that accepts only numpy arrays and plain containers.
- ``digits``: scikit-learn's shipped copy of the UCI 8x8 digits (no files needed).
- ``mnist1d``: generated locally by the ``mnist1d`` package (Greydanus, 2020).

Files are looked for in ``task.data_dir``, else in ``$LEARNLAB_DATA``, in the folder itself
and in the usual sub-folders (``<root>/<name>``, torchvision's ``MNIST/raw`` ...), and checked
against their formats when a spec is validated (``check_files``), before any run starts.
Runs never download: ``learnlab data fetch NAME --to DIR`` (``learnlab.tasks.fetch``) does.
"""

from __future__ import annotations

import functools
import importlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from learnlab.tasks._dataset_formats import (
    REPLACE,
    DamagedFileError,
    DatasetFilesError,
    check_idx_images,
    check_idx_labels,
    load_cifar_batch,
    read_idx,
)

__all__ = [
    "DatasetInfo",
    "DATASETS",
    "DatasetFilesError",
    "find_files",
    "check_files",
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


def default_data_dir() -> Path:
    """Where datasets are without ``task.data_dir`` (and where ``learnlab data fetch`` puts them
    without ``--to``): ``$LEARNLAB_DATA``, else a per-user cache (``$XDG_CACHE_HOME/learnlab/data``,
    ``~/.cache/learnlab/data`` when that is unset)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "learnlab" / "data"


def _roots(data_dir: str | os.PathLike | None) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    return [default_data_dir()]


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
    where = "looked in: " + ", ".join(looked)
    if data_dir is None and not os.environ.get(ENV_VAR):
        get = (
            f"get them with `learnlab data fetch {name}` (into {_quoted(roots[0])}, where runs look when neither "
            f"task.data_dir nor {ENV_VAR} is set), or point task.data_dir at a folder that has them"
        )
    else:
        get = f"get them with `learnlab data fetch {name} --to {_quoted(roots[0])}` (or copy the official files there)"
    raise DatasetFilesError(
        f"dataset {name!r} needs the files {expected} in one folder; {where}. "
        f"learnlab never downloads during a run: {get}"
    )


def _quoted(path: Path) -> str:
    return shlex.quote(str(path))


def check_files(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """``find_files``, then every file checked against its format in bounded memory.

    IDX files (mnist, fashion_mnist): the header first; images (n, 28, 28) uint8 with n at
    most the official split's, data exactly as long as the header says (a plain file's size is
    compared, a gzipped one decompressed in chunks up to that length + 1 byte, so a gzip bomb
    is refused after a few kilobytes); labels (n,) in [0, classes), as many as the images.
    CIFAR-10: each batch through the restricted unpickler after a size check, (n, 3072) uint8
    data and n labels in [0, 10). A set of files is checked once per process: the result is
    cached by every file's (path, size, mtime), so a sweep of 10,000 runs reads them once.

    Raises:
        DatasetFilesError: files missing (as ``find_files``), or one problem per damaged file
            (``problems``), each ``<file>: <what is wrong>; <what to do>``.
    """
    paths = find_files(name, data_dir)
    stamps = tuple((f, str(p), st.st_size, st.st_mtime_ns) for f, p in paths.items() for st in (p.stat(),))
    fix = f"delete it and fetch the official files: learnlab data fetch {name} --to {_quoted(_roots(data_dir)[0])}"
    problems = _checked(name, stamps, fix)
    if problems:
        raise DatasetFilesError(*problems)
    return paths


@functools.lru_cache(maxsize=64)
def _checked(name: str, stamps: tuple[tuple[str, str, int, int], ...], fix: str) -> tuple[str, ...]:
    """The problems of a set of files, given as (official name, path, size, mtime) each."""
    info = DATASETS[name]
    paths = {f: Path(p) for f, p, _, _ in stamps}
    problems: list[str] = []

    def attempt(check, *args):
        try:
            return check(*args)
        except DamagedFileError as exc:  # advice to fetch the official files, unless it is about permissions
            problems.append(str(exc.with_fix(fix) if exc.fix == REPLACE else exc))
            return None

    if name == "cifar10":
        for path in paths.values():
            attempt(load_cifar_batch, path, info.classes)
        return tuple(problems)
    for split, most in (("train", info.train_size), ("t10k", info.test_size)):
        images, labels = paths[f"{split}-images-idx3-ubyte"], paths[f"{split}-labels-idx1-ubyte"]
        n_images = attempt(check_idx_images, images, info.shape[1:], most)
        n_labels = attempt(check_idx_labels, labels, info.classes, most)
        if n_images is not None and n_labels is not None and n_images != n_labels:
            problems.append(
                f"{labels}: {n_labels} labels but {images.name} holds {n_images} images "
                f"(the two files of a split must match); {fix}"
            )
    return tuple(problems)


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
        paths = check_files(name, root)  # shapes, sizes and label ranges (cached since the spec was validated)
        xs = [read_idx(paths[f]) for f in _IDX_FILES]
        return xs[0][:, None], xs[1].astype(np.int64), xs[2][:, None], xs[3].astype(np.int64), 255.0
    if name == "cifar10":
        paths = check_files(name, root)
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
