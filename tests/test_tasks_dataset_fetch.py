"""``learnlab data fetch`` (and ``learnlab.tasks.fetch``) from a loopback HTTP server serving
hand-made files: checksums, resumed and truncated transfers, archives that reach outside, the
default folder. Nothing leaves the machine."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_tasks_dataset_files import _cifar, _mnist
from typer.testing import CliRunner

from learnlab.cli import app
from learnlab.tasks import _fetch as fetch_module
from learnlab.tasks import check_files, fetch
from learnlab.tasks._datasets import find_files

# --- learnlab data fetch, from a loopback server ---------------------------------------------


class _Server:
    """A loopback HTTP server of ``files`` (name -> bytes) that honours Range requests
    (unless ``ranges`` is False), records every request's path and Range header, and can
    close a transfer early: ``cut[name] = k`` sends k bytes of the next answer, then hangs up."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests, self.cut, self.ranges = files, [], {}, True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((self.path, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(match.group(1)) if match and server.ranges else 0
                if start >= len(data) > 0:
                    self.send_error(416)
                    return
                self.send_response(206 if match and server.ranges else 200)
                if match and server.ranges:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in server.cut:
                    body = body[: server.cut.pop(name)]
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _gz_mnist_files(tmp_path: Path) -> dict[str, bytes]:
    paths = _mnist(tmp_path / "made", gz=True)
    return {p.name: p.read_bytes() for p in paths.values()}


def _md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.md5(data).hexdigest() for name, data in files.items()}


@pytest.fixture
def serve(monkeypatch):
    """serve(name, files, md5=None) -> a loopback server of ``files``, with dataset ``name``'s
    published checksums replaced by theirs (or ``md5``)."""
    servers = []

    def make(name: str, files: dict[str, bytes], md5: dict[str, str] | None = None) -> _Server:
        monkeypatch.setitem(
            fetch_module.SOURCES,
            name,
            fetch_module.Source(
                ("http://127.0.0.1:9/unused/",), md5 or _md5s(files), fetch_module.SOURCES[name].archive
            ),
        )
        servers.append(_Server(files))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _fetch(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, ["data", "fetch", *args], env=env)


def test_fetch_downloads_checks_and_prints_the_spec_line(tmp_path, serve):
    files = _gz_mnist_files(tmp_path)
    server = serve("mnist", files)
    root = tmp_path / "data"
    result = _fetch("mnist", "--to", str(root), "--mirror", server.url + "/{name}/")
    assert result.exit_code == 0, result.output
    assert f"task.data_dir: {root}" in result.output and f"task.data_dir={root}" in result.output
    found = find_files("mnist", root)
    assert {p.name for p in found.values()} == set(files)
    assert all(p.parent == root / "mnist" and p.read_bytes() == files[p.name] for p in found.values())
    assert sorted(path for path, _ in server.requests) == sorted(f"/mnist/{name}" for name in files)
    assert not list(root.rglob("*.part"))
    check_files("mnist", root)
    result = _fetch("mnist", env={"LEARNLAB_DATA_MIRROR": server.url + "/mnist", "LEARNLAB_DATA": str(root)})
    assert result.exit_code == 0, result.output
    assert "$LEARNLAB_DATA points there" in result.output
    assert len(server.requests) == 4, "files already present with the right checksum are not downloaded again"


def test_fetch_python_api_with_checksums_and_a_shadowing_root(tmp_path, serve, monkeypatch):
    files = {"cifar-10-python.tar.gz": _cifar_archive(tmp_path)}
    server = serve("cifar10", files, md5={"cifar-10-python.tar.gz": "0" * 32})
    root = tmp_path / "data"
    monkeypatch.setenv("LEARNLAB_DATA", str(root))
    with pytest.raises(fetch_module.FetchError, match="expected MD5 0{32}, got"):
        fetch("cifar10", mirror=server.url)
    assert not list(root.rglob("*.tar.gz*")), "a wrong download is deleted"
    _cifar(root / "cifar-10-batches-py")  # another copy, found first from the root
    data_dir = fetch("cifar10", mirror=server.url, checksums=_md5s(files))
    assert data_dir == root / "cifar10"
    found = find_files("cifar10", data_dir)
    assert all(p.parent == root / "cifar10" / "cifar-10-batches-py" for p in found.values())
    for d in ("digits", "mnist1d", "imagenet"):
        with pytest.raises(ValueError, match="needs no files|is not a dataset"):
            fetch(d, tmp_path)


def _cifar_archive(tmp_path: Path, extra: tarfile.TarInfo | None = None) -> bytes:
    """The official archive's layout: cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}."""
    folder = tmp_path / "made-cifar" / "cifar-10-batches-py"
    _cifar(folder)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"]}, protocol=2))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"evil") if extra.isfile() else None)
    return buffer.getvalue()


def test_fetch_cifar_extracts_the_archive_where_find_files_looks(tmp_path, serve):
    server = serve("cifar10", {"cifar-10-python.tar.gz": _cifar_archive(tmp_path)})
    result = _fetch("cifar10", "--to", str(tmp_path / "data"), "--mirror", server.url)
    assert result.exit_code == 0, result.output
    found = find_files("cifar10", tmp_path / "data")
    assert {p.parent for p in found.values()} == {tmp_path / "data" / "cifar10" / "cifar-10-batches-py"}
    made = tmp_path / "made-cifar" / "cifar-10-batches-py"
    assert all(p.read_bytes() == (made / p.name).read_bytes() for p in found.values())
    assert not [p for p in (tmp_path / "data" / "cifar10").iterdir() if p.name.startswith(".extract")]


@pytest.mark.parametrize("kind", ["escape", "absolute", "symlink"])
def test_fetch_refuses_archives_that_reach_outside_or_link(tmp_path, serve, kind):
    member = tarfile.TarInfo(
        {"escape": "../../evil", "absolute": "/tmp/evil", "symlink": "cifar-10-batches-py/x"}[kind]
    )
    if kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        member.size = 4
    server = serve("cifar10", {"cifar-10-python.tar.gz": _cifar_archive(tmp_path, member)})
    result = _fetch("cifar10", "--to", str(tmp_path / "data"), "--mirror", server.url)
    assert result.exit_code == 2, result.output
    assert f"refused to extract {member.name!r}" in result.output
    assert not (tmp_path / "evil").exists() and not (tmp_path / "data" / "evil").exists()
    assert not (tmp_path / "data" / "cifar10" / "cifar-10-batches-py").exists()


def test_fetch_wrong_checksum_exits_2_and_leaves_nothing(tmp_path, serve):
    files = _gz_mnist_files(tmp_path)
    md5 = {**_md5s(files), "t10k-labels-idx1-ubyte.gz": "0123456789abcdef0123456789abcdef"}
    server = serve("mnist", files, md5)
    result = _fetch("mnist", "--to", str(tmp_path / "data"), "--mirror", server.url)
    assert result.exit_code == 2, result.output
    final = tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    got = hashlib.md5(files["t10k-labels-idx1-ubyte.gz"]).hexdigest()
    assert f"{final}: wrong checksum" in result.output
    assert f"expected MD5 0123456789abcdef0123456789abcdef, got {got}" in result.output
    assert not final.exists() and not final.with_name(final.name + ".part").exists()
    assert "Traceback" not in result.output


@pytest.mark.parametrize("ranges", [True, False])
def test_fetch_resumes_an_interrupted_transfer(tmp_path, serve, ranges):
    files = _gz_mnist_files(tmp_path)
    server = serve("mnist", files)
    server.ranges = ranges  # False: the server answers 200 with the whole file; the client starts over
    name = "train-images-idx3-ubyte.gz"
    server.cut[name] = 5000
    root = tmp_path / "data"
    result = _fetch("mnist", "--to", str(root), "--mirror", server.url)
    assert result.exit_code == 2, result.output
    part = root / "mnist" / (name + ".part")
    assert "the connection closed after 5000 of" in result.output and "run again to resume" in result.output
    assert part.stat().st_size == 5000 and not (root / "mnist" / name).exists()
    result = _fetch("mnist", "--to", str(root), "--mirror", server.url)
    assert result.exit_code == 0, result.output
    assert (f"/{name}", "bytes=5000-") in server.requests, server.requests
    assert (root / "mnist" / name).read_bytes() == files[name] and not part.exists()
    check_files("mnist", root)


def test_fetch_network_errors_and_bad_names_exit_2_in_one_line(tmp_path, serve):
    serve("mnist", _gz_mnist_files(tmp_path))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _fetch("mnist", "--to", str(tmp_path / "data"), "--mirror", f"http://127.0.0.1:{port}/")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("could not download train-images-idx3-ubyte.gz (http://127.0.0.1:")
    assert "Connection refused" in result.output and len(result.output.strip().splitlines()) == 1
    result = _fetch("mnist", "--to", str(tmp_path / "data"), "--mirror", "ftp://example/")
    assert result.exit_code == 2 and "http:// or https://" in result.output
    result = _fetch("imagenet")
    assert result.exit_code == 2 and "unknown dataset 'imagenet'" in result.output
    result = _fetch("digits")
    assert result.exit_code == 0 and "digits needs no files" in result.output


def test_fetch_default_folder_is_learnlab_data_else_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNLAB_DATA", str(tmp_path / "env"))
    assert fetch_module.default_data_dir() == tmp_path / "env"
    monkeypatch.delenv("LEARNLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert fetch_module.default_data_dir() == tmp_path / "cache" / "learnlab" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fetch_module.default_data_dir() == tmp_path / "home" / ".cache" / "learnlab" / "data"
