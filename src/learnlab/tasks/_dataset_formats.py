"""The official dataset file formats, read defensively: IDX files and CIFAR-10 python batches.

Every reader looks at a file's header before its body and never decompresses more than the
header promises (plus one byte, to see that nothing follows), so a gzip bomb is refused after
a few kilobytes and a corrupt file costs at most its own size in memory. Every way a file can
be damaged (bad magic number, wrong size, truncated or corrupt gzip stream, a pickle that
calls code, labels out of range) becomes a ``DamagedFileError`` whose message reads
``<file>: <what is wrong>; <what to do>``.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import importlib.util
import math
import os
import pickle
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = [
    "DatasetFilesError",
    "DamagedFileError",
    "IdxHeader",
    "read_idx_header",
    "read_idx",
    "check_idx_images",
    "check_idx_labels",
    "load_cifar_batch",
]

REPLACE = "replace it with an intact copy of the official file"
_CHUNK = 1 << 20  # bytes read (or decompressed) at a time
# an official CIFAR-10 batch is 31,035,xxx bytes (10,000 x 3,073 plus file names); twice that is refused unread
_CIFAR_MAX_BYTES = 64 << 20
# IDX type codes (LeCun's format): 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetFilesError(ValueError):
    """A dataset's files are missing or malformed. ``problems``: one message per problem
    (the exception's text is them, one per line)."""

    def __init__(self, *problems: str):
        self.problems = list(problems)
        super().__init__("\n".join(problems))


class DamagedFileError(DatasetFilesError):
    """One file is damaged: the message is ``<path>: <problem>; <fix>``."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str = REPLACE):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{path}: {problem}; {fix}")

    def with_fix(self, fix: str) -> DamagedFileError:
        """The same problem with other advice (e.g. the command that fetches the official files)."""
        return DamagedFileError(self.path, self.problem, fix)


@dataclass(frozen=True)
class IdxHeader:
    """An IDX header: magic ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes."""

    dtype: np.dtype
    dims: tuple[int, ...]

    @property
    def start(self) -> int:
        """Bytes before the data."""
        return 4 + 4 * len(self.dims)

    @property
    def body_bytes(self) -> int:
        """Bytes of data the header promises."""
        return math.prod(self.dims) * self.dtype.itemsize


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """``path``'s bytes (decompressed if it ends in .gz); read and gzip errors name the file."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            yield fh  # type: ignore[misc]  # GzipFile is a BinaryIO in all but name
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # not gzip, truncated, corrupt, CRC or size mismatch
        raise DamagedFileError(path, f"damaged gzip stream ({exc or type(exc).__name__})") from None
    except OSError as exc:
        raise DamagedFileError(
            path, f"cannot be read ({exc.strerror or exc})", "check the file and its permissions"
        ) from None


def _header(fh: BinaryIO, path: Path) -> IdxHeader:
    magic = fh.read(4)
    if len(magic) < 4 or magic[0] or magic[1] or magic[2] not in _IDX_TYPES:
        raise DamagedFileError(
            path, f"not an IDX file (magic number {magic.hex(' ') or 'missing'}; expected 00 00 <type> <ndim>)"
        )
    sizes = fh.read(4 * magic[3])
    if len(sizes) < 4 * magic[3]:
        raise DamagedFileError(path, f"the IDX header ends early ({magic[3]} dimensions need {4 * magic[3]} bytes)")
    return IdxHeader(np.dtype(_IDX_TYPES[magic[2]]), struct.unpack(f">{magic[3]}I", sizes))


def _body(fh: BinaryIO, path: Path, header: IdxHeader) -> Iterator[bytes]:
    """The data in chunks: exactly ``header.body_bytes``, then one byte more must not exist
    (reading it also makes gzip check the stream's CRC and length)."""
    left = header.body_bytes
    while left:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            raise DamagedFileError(
                path, f"truncated: {_promise(header)}, the data ends after {header.body_bytes - left}"
            )
        left -= len(chunk)
        yield chunk
    if fh.read(1):
        raise DamagedFileError(path, f"longer than its header says: {_promise(header)}, and more data follows")


def _promise(header: IdxHeader) -> str:
    return f"the header promises {header.dims} {header.dtype.name} values ({header.body_bytes} bytes)"


def _check_size(fh: BinaryIO, path: Path, header: IdxHeader) -> None:
    """The body is exactly as long as the header says, in bounded memory: a stat for a plain
    file, a capped stream for a gzipped one."""
    if path.suffix != ".gz":
        got = os.stat(path).st_size - header.start
        if got != header.body_bytes:
            what = "truncated" if got < header.body_bytes else "longer than its header says"
            raise DamagedFileError(path, f"{what}: {_promise(header)}, the file has {got} bytes of data")
        return
    for _ in _body(fh, path, header):
        pass


def read_idx_header(path: str | os.PathLike) -> IdxHeader:
    """The header of an IDX file (gzipped if its name ends in .gz), without reading the data.

    Raises:
        DamagedFileError: if the file is unreadable or not an IDX file.
    """
    path = Path(path)
    with _opened(path) as fh:
        return _header(fh, path)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (gzipped if its name ends in .gz): magic 0 0 type ndim, big-endian dims, data.

    The header is read first; a plain file's size is compared with it before any data is
    read, and a gzipped one is decompressed in chunks up to the promised size + 1 byte.

    Raises:
        DamagedFileError: if the header, the size or the gzip stream is wrong.
    """
    path = Path(path)
    with _opened(path) as fh:
        header = _header(fh, path)
        if path.suffix != ".gz":
            _check_size(fh, path, header)  # before reading: a header's claim never allocates
        data = bytearray()
        for chunk in _body(fh, path, header):
            data += chunk
    native = header.dtype.newbyteorder("=")
    return np.frombuffer(data, dtype=header.dtype).reshape(header.dims).astype(native, copy=False)


def check_idx_images(path: str | os.PathLike, shape: tuple[int, ...], most: int) -> int:
    """Check an IDX image file of ``(n, *shape)`` unsigned bytes, n <= ``most``, without
    keeping its data; returns n.

    Raises:
        DamagedFileError: naming the file and what is wrong.
    """
    path = Path(path)
    with _opened(path) as fh:
        header = _header(fh, path)
        if header.dtype != np.uint8 or len(header.dims) != 1 + len(shape) or header.dims[1:] != shape:
            raise DamagedFileError(
                path,
                f"holds {header.dims} {header.dtype.name} values; expected (n, {', '.join(map(str, shape))}) uint8",
            )
        if header.dims[0] > most:
            raise DamagedFileError(path, f"holds {header.dims[0]} images, more than the official split's {most}")
        _check_size(fh, path, header)
    return header.dims[0]


def check_idx_labels(path: str | os.PathLike, classes: int, most: int) -> int:
    """Check an IDX label file: n <= ``most`` unsigned bytes, each in [0, classes); returns n.

    Raises:
        DamagedFileError: naming the file, and for labels out of range their count and the first.
    """
    path = Path(path)
    with _opened(path) as fh:
        header = _header(fh, path)
        if header.dtype != np.uint8 or len(header.dims) != 1:
            raise DamagedFileError(path, f"holds {header.dims} {header.dtype.name} values; expected (n,) uint8 labels")
        if header.dims[0] > most:
            raise DamagedFileError(path, f"holds {header.dims[0]} labels, more than the official split's {most}")
        bad, first, seen = 0, None, 0
        for chunk in _body(fh, path, header):  # labels: (n,) uint8, checked chunk by chunk
            out = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) >= classes)
            if first is None and out.size:
                first = (seen + int(out[0]), chunk[out[0]])
            bad, seen = bad + out.size, seen + len(chunk)
    if first is not None:
        raise DamagedFileError(path, _out_of_range(bad, header.dims[0], classes, *first))
    return header.dims[0]


def _out_of_range(bad: int, n: int, classes: int, index: int, value) -> str:
    return f"{bad} of {n} labels are outside [0, {classes}) (the first at index {index}: {value})"


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


def load_cifar_batch(path: str | os.PathLike, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: (images (n, 3, 32, 32) uint8, labels (n,) int64 in [0, classes)).

    Raises:
        DamagedFileError: if the file is larger than twice an official batch (refused unread),
            holds anything but plain containers and arrays (a malicious pickle is refused
            before any of its code can run), or its data or labels are malformed.
    """
    path = Path(path)
    try:
        size = os.stat(path).st_size
        if size > _CIFAR_MAX_BYTES:
            raise DamagedFileError(path, f"{size} bytes, more than twice an official batch (~31 MB): refused unread")
        with open(path, "rb") as fh:
            batch = _ArraysOnly(fh, encoding="bytes").load()
    except DamagedFileError:
        raise
    except OSError as exc:
        raise DamagedFileError(
            path, f"cannot be read ({exc.strerror or exc})", "check the file and its permissions"
        ) from None
    except Exception as exc:  # whatever a damaged or hostile pickle makes the unpickler raise
        raise DamagedFileError(path, f"refused to load: {exc or type(exc).__name__}") from None
    if not isinstance(batch, dict):
        raise DamagedFileError(path, f"expected a dict with b'data' and b'labels', got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"a {data.shape} {data.dtype} array" if isinstance(data, np.ndarray) else type(data).__name__
        raise DamagedFileError(path, f"expected 'data' as a (n, 3072) uint8 array, got {got}")
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError):
        labels = np.asarray(None)
    if labels.shape != (data.shape[0],) or (labels.size and labels.dtype.kind not in "iu"):
        raise DamagedFileError(path, f"{data.shape[0]} images but labels of shape {labels.shape} ({labels.dtype})")
    out = np.flatnonzero((labels < 0) | (labels >= classes))
    if out.size:
        raise DamagedFileError(path, _out_of_range(out.size, labels.size, classes, int(out[0]), labels[out[0]]))
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)
