"""``learnlab data fetch``: a dataset's official files, downloaded once into a data folder.

Runs never download; this is the only code that does. Each file is streamed to
``FILE.part`` (resumed with an HTTP ``Range`` request after an interruption), its MD5
compared with the published one, and only then renamed into place. CIFAR-10's archive is
extracted after checking that every member is a plain file or folder inside it. The
result is checked like a spec's files (``check_files``) before its folder is reported.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from learnlab.tasks._datasets import DATASETS, DatasetFilesError, check_files, default_data_dir, find_files

__all__ = ["FetchError", "Source", "SOURCES", "MIRROR_ENV_VAR", "default_data_dir", "fetch"]

MIRROR_ENV_VAR = "LEARNLAB_DATA_MIRROR"
_CHUNK = 1 << 20
_TIMEOUT = 60  # seconds without a byte before a connection counts as failed


@dataclass(frozen=True)
class Source:
    """Where a dataset's official files are published: base URLs tried in order, and each
    file's published MD5; an ``archive`` (a .tar.gz) is extracted into the dataset's folder."""

    urls: tuple[str, ...]
    md5: Mapping[str, str]
    archive: bool = False


SOURCES = {
    "mnist": Source(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion_mnist": Source(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "cifar10": Source(
        ("https://www.cs.toronto.edu/~kriz/",),
        {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        archive=True,
    ),
}


class FetchError(Exception):
    """A download failed or its checksum is wrong; the message says which file, what happened
    and what to do."""


def fetch(
    name: str,
    to: str | os.PathLike | None = None,
    *,
    mirror: str | None = None,
    progress: bool | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Path:
    """Download dataset ``name``'s official files into ``to/<name>/`` and check them.

    Files already there with the right MD5 are kept; an interrupted download resumes.

    Args:
        name: ``mnist``, ``fashion_mnist`` or ``cifar10`` (``digits`` and ``mnist1d`` need no files).
        to: the data folder (default: ``default_data_dir()``).
        mirror: a base URL serving the same file names instead of the official sources, with
            ``{name}`` replaced by the dataset's name (default: ``$LEARNLAB_DATA_MIRROR``).
        progress: a progress bar per file on stderr; None: when stderr is a terminal.
        checksums: {file name: MD5} replacing the published checksums (a mirror of other
            copies, tests).

    Returns:
        The folder to give as ``task.data_dir``: ``to``, or ``to/<name>`` when other files in
        ``to`` would be found first.

    Raises:
        ValueError: ``name`` is unknown or needs no files.
        FetchError: a download failed (a partial one is kept to resume) or its MD5 is wrong
            (it is deleted).
        DatasetFilesError: the files do not pass ``check_files``.
        OSError: ``to`` cannot be written.
    """
    if name not in SOURCES:
        why = "needs no files" if name in DATASETS else "is not a dataset"
        raise ValueError(f"{name!r} {why}; the datasets with files to fetch: {', '.join(SOURCES)}")
    source = SOURCES[name]
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV_VAR) or None
    bases = [mirror.replace("{name}", name)] if mirror else list(source.urls)
    for base in bases:
        if not re.match(r"https?://", base):
            raise ValueError(f"a mirror is an http:// or https:// URL; got {base!r}")
    root = Path(to if to is not None else default_data_dir()).expanduser().absolute()
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    md5 = {**source.md5, **(checksums or {})}
    for file in source.md5:
        fresh = _download([base.rstrip("/") + "/" + file for base in bases], folder / file, md5[file], progress)
        if source.archive and (fresh or not _extracted_ok(name, folder)):
            _extract(folder / file, folder)
    try:  # the root as task.data_dir, if a search from it finds this copy first
        found = next(iter(find_files(name, root).values()))
    except DatasetFilesError:
        found = None
    data_dir = root if found is not None and found.is_relative_to(folder) else folder
    check_files(name, data_dir)
    return data_dir


def _download(urls: list[str], dest: Path, md5: str, progress: bool | None) -> bool:
    """``dest`` with MD5 ``md5`` from the first of ``urls`` that answers; False if it was already there."""
    if dest.is_file() and _md5(dest) == md5:
        return False
    part = dest.with_name(dest.name + ".part")
    failures = []
    for url in urls:
        try:
            _stream(url, part, progress)
            break
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{url}: {_reason(exc)}")
    else:
        kept = f"; {part.stat().st_size} bytes kept in {part}: run again to resume" if part.is_file() else ""
        raise FetchError(f"could not download {dest.name} ({'; '.join(failures)}){kept}")
    got = _md5(part)
    if got != md5:
        part.unlink()
        raise FetchError(
            f"{dest}: wrong checksum from {url}: expected MD5 {md5}, got {got}; "
            "the download was deleted: run again, or use another --mirror"
        )
    os.replace(part, dest)  # atomic: dest is either absent, the old file, or the checked one
    return True


def _stream(url: str, part: Path, progress: bool | None) -> None:
    """Append ``url``'s bytes to ``part``, from its current size (a Range request) or from the start."""
    from tqdm import tqdm

    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:  # the .part is not a prefix of this file: start over
            part.unlink()
            return _stream(url, part, progress)
        raise
    with response:
        start = _range_start(response.headers.get("Content-Range")) if response.status == 206 else 0
        if start != have:  # the server sent the whole file (200) or another range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        with (
            open(part, "ab" if have else "wb") as out,
            tqdm(
                desc=part.name[: -len(".part")],
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=None if progress is None else not progress,
            ) as bar,
        ):
            received = have
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received < total:
        raise ConnectionError(f"the connection closed after {received} of {total} bytes")
    return None


def _range_start(content_range: str | None) -> int:
    match = re.match(r"bytes (\d+)-", content_range or "")
    return int(match.group(1)) if match else -1


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # a checksum against damage, as published
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _extracted_ok(name: str, folder: Path) -> bool:
    try:
        check_files(name, folder)
    except DatasetFilesError:
        return False
    return True


def _extract(archive: Path, folder: Path) -> None:
    """Extract a .tar.gz into ``folder``: only plain files and folders, none outside it; each
    file moved into place once the whole archive has been read."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in PurePosixPath(m.name).parts:
                    raise FetchError(f"{archive}: refused to extract {m.name!r} (only plain files inside the folder)")
            scratch = Path(tempfile.mkdtemp(prefix=".extract-", dir=folder))
            try:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: refuses links, devices, escapes too
                    tar.extractall(scratch, members=members, filter="data")
                else:
                    tar.extractall(scratch, members=members)  # members checked above
                for m in members:
                    if m.isfile():
                        (folder / m.name).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(scratch / m.name, folder / m.name)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"{archive}: cannot be extracted ({exc}); delete it and run again") from None
