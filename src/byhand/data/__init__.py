"""MNIST and Fashion-MNIST as tensors: the IDX reader and writer, checked downloads, a cache.

``load_mnist()`` reads the four official IDX files from a cache directory (``root``,
else ``$BYHAND_DATA``, else ``~/.cache/byhand``), under ``mnist/``. Missing files are
downloaded from several mirrors in turn, and a download is kept only if its MD5
matches the official value; any failure of a mirror moves on to the next. Every read
checks that the path is a regular file and the IDX header (the magic number, the
data type, the dimensions, the byte count) and inflates no more than the header
announces. Every write is atomic, so an interrupted or failed download never leaves a
half-written file or an empty folder behind.

One idea per submodule: :mod:`~byhand.data.idx` (the file format),
:mod:`~byhand.data.atomic` (atomic writes), :mod:`~byhand.data.mirrors` (checked
downloads), :mod:`~byhand.data.datasets` (the loaders). The offline preparation
from ``mnist.pkl.gz`` (``python -m byhand.data prepare``, run by ``make data``) is the
build-time tool :mod:`byhand.data.prepare`, which the library never imports.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from .datasets import DIGITS as DIGITS
from .datasets import FASHION_CLASSES as FASHION_CLASSES
from .datasets import FASHION_FILES as FASHION_FILES
from .datasets import FASHION_MIRRORS as FASHION_MIRRORS
from .datasets import FASHION_SYSTEM_DIR as FASHION_SYSTEM_DIR
from .datasets import MNIST_FILES as MNIST_FILES
from .datasets import MNIST_MIRRORS as MNIST_MIRRORS
from .datasets import (
    Dataset,
    data_root,
    load_fashion_mnist,
    load_mnist,
)
from .idx import CorruptFileError, read_idx, write_idx
from .mirrors import DownloadError, download

__all__ = [
    "CorruptFileError",
    "Dataset",
    "DownloadError",
    "data_root",
    "download",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "write_idx",
]


def __getattr__(name: str) -> Any:
    """``prepare_from_pickle`` and ``main`` moved to :mod:`byhand.data.prepare` (deprecated aliases)."""
    if name not in ("prepare_from_pickle", "main"):
        raise AttributeError(f"module 'byhand.data' has no attribute {name!r}")
    warnings.warn(f"byhand.data.{name} is deprecated; use byhand.data.prepare.{name}",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("byhand.data.prepare"), name)
