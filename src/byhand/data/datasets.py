"""MNIST and Fashion-MNIST as tensors, read from a cache folder and downloaded when missing.

``load_mnist()`` reads the four official IDX files from ``<root>/mnist`` (``root``,
else ``$BYHAND_DATA``, else ``~/.cache/byhand``). Missing files are downloaded from
several mirrors in turn and kept only if their MD5 is the official one
(:mod:`byhand.data.mirrors`); a failed download leaves no file and no new folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from .atomic import new_folders_removed_on_failure, remove_stale_parts
from .idx import CorruptFileError, read_idx
from .mirrors import DownloadError, download

__all__ = ["Dataset", "data_root", "load_fashion_mnist", "load_mnist"]

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

DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


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


Dataset.__module__ = "byhand.data"  # its public home


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
    """Clean up what a killed writer left, then download the files that are missing.

    The first line of the :class:`FileNotFoundError` says everything a reader must
    do; the lines after it give each mirror's failure.
    """
    for name in files:
        remove_stale_parts(folder / name)
    missing = [name for name in files if not (folder / name).exists()]
    if not missing:
        return
    if not allow_download:
        raise FileNotFoundError(_where_to_put(folder, missing, what, "missing"))
    try:
        with new_folders_removed_on_failure(folder):
            for name in missing:
                download(name, files[name], mirrors, folder)
    except DownloadError as exc:
        summary = _where_to_put(folder, missing, what, "could not download")
        raise FileNotFoundError(f"{summary}\n{exc}") from exc


def _where_to_put(folder: Path, missing: Sequence[str], what: str, problem: str) -> str:
    """One line: what is missing where, and the three ways to provide it."""
    return (f"{what}: {problem} {', '.join(missing)} in {folder}/; put the official IDX .gz "
            f"files there, set BYHAND_DATA to a folder holding a {folder.name}/ subfolder, or run "
            "`make data` in the book's repository to build them offline")


def _read_dataset(name: str, folder: Path, classes: tuple[str, ...]) -> Dataset:
    """Read the four IDX files of ``folder`` and check the MNIST shapes."""
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
        >>> import torch; torch.bincount(mnist.test_labels)
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
