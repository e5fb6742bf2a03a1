r"""Turn a dataset into the device-resident tensors training reads, and the batch order.

The official training images are split, by a fixed seeded permutation
(:func:`split_indices`), into 50,000 rows to train on and 10,000 rows of validation;
the test images are left alone until the end. Every image becomes a normalised row
(:func:`normalisation`, from the training rows only) and everything moves to the
device once (:func:`prepare`). Every epoch draws a seeded permutation of the
training rows on the CPU and moves it to the device once per epoch, not per step
(:func:`batch_indices`), so the same seed gives the same batches on every device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .data import Dataset

__all__ = [
    "SPLIT_SEED",
    "VALIDATION_FRACTION",
    "Tensors",
    "batch_indices",
    "normalisation",
    "prepare",
    "split_indices",
]

VALIDATION_FRACTION = 1 / 6  # 10,000 of MNIST's 60,000 training images, as fastai's split
SPLIT_SEED = 0  # the split is the same whatever seed trains the network


class Tensors(NamedTuple):
    """The six tensors training needs, all on one device: features and class indices.

    ``train`` rows are trained on, ``valid`` rows choose hyperparameters and when to
    stop, ``test`` rows are evaluated once at the end.

    Examples:
        >>> t = Tensors(*[torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64)] * 3)
        >>> t.x_valid.shape, t.y_test.dtype
        (torch.Size([2, 3]), torch.int64)
    """

    #: The training rows' features, ``(N_train, K)``.
    x_train: Tensor
    #: The training rows' classes, ``(N_train,)``, int64.
    y_train: Tensor
    #: The validation rows' features, ``(N_valid, K)``.
    x_valid: Tensor
    #: The validation rows' classes, ``(N_valid,)``, int64.
    y_valid: Tensor
    #: The test images' features, ``(N_test, K)``.
    x_test: Tensor
    #: The test images' classes, ``(N_test,)``, int64.
    y_test: Tensor


def normalisation(images: Tensor) -> tuple[float, float]:
    r"""Mean and standard deviation of the pixels :math:`p_{nk}/255` of ``uint8`` images.

    .. math::

       \begin{aligned}
       \mu &= \frac{1}{NK}\sum_{n,k} \frac{p_{nk}}{255}, \\
       \sigma^2 &= \frac{1}{NK - 1}\sum_{n,k}\Big(\frac{p_{nk}}{255} - \mu\Big)^2,
       \end{aligned}

    computed from exact integer sums of :math:`p` and :math:`p^2`, so the result
    does not depend on the device or on the order of a floating-point reduction.

    Examples:
        >>> mean, std = normalisation(torch.tensor([[0, 255], [255, 0]], dtype=torch.uint8))
        >>> mean, round(std, 4)
        (0.5, 0.5774)
        >>> normalisation(torch.zeros(2))
        Traceback (most recent call last):
            ...
        TypeError: normalisation: images must be uint8; got dtype torch.float32
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"normalisation: images must be uint8; got dtype {images.dtype}")
    count = images.numel()
    if count < 2:
        raise ValueError(f"normalisation: need at least two pixels; got {count}")
    pixels = images.to(torch.int64)
    total, squares = int(pixels.sum()), int((pixels * pixels).sum())
    mean = total / count
    var = (squares - total * total / count) / (count - 1)
    return mean / 255.0, math.sqrt(var) / 255.0


def _features(
    images: Tensor, mean: float, std: float, device: torch.device, dtype: torch.dtype
) -> Tensor:
    r""":math:`x_{nk} = (p_{nk}/255 - \mu)/\sigma`, flattened to one row per image, on ``device``."""
    flat = images.reshape(images.shape[0], -1).to(device)
    return (flat.to(dtype) / 255.0 - mean) / std


def split_indices(
    n: int, fraction: float = VALIDATION_FRACTION, seed: int = SPLIT_SEED
) -> tuple[Tensor, Tensor]:
    """Split ``range(n)`` into training and validation row indices, each sorted.

    A permutation of ``range(n)`` is drawn by ``torch.randperm`` from a CPU generator
    seeded with ``seed``; its first ``round(fraction * n)`` entries are the validation
    rows and the rest the training rows. With MNIST's 60,000 training images and the
    defaults this gives 50,000 and 10,000 rows, the sizes of the split that fastai's
    course (and the forum thread that asks about it) use; theirs takes the last 10,000
    images in file order, ours draws them at random with a fixed seed.

    Examples:
        >>> split_indices(6, fraction=1 / 3)
        (tensor([0, 1, 3, 4]), tensor([2, 5]))
        >>> [len(rows) for rows in split_indices(60_000)]
        [50000, 10000]
    """
    if not 0 < fraction < 1:
        raise ValueError(f"split_indices: fraction must be between 0 and 1; got {fraction}")
    n_valid = round(fraction * n)
    if not 0 < n_valid < n:
        raise ValueError(
            f"split_indices: need at least one training and one validation row; got n={n} "
            f"rows and fraction={fraction} ({n_valid} validation rows)"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_valid:].sort().values, order[:n_valid].sort().values


def prepare(
    dataset: Dataset,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    limit: int | None = None,
    validation: float = VALIDATION_FRACTION,
    split_seed: int = SPLIT_SEED,
) -> Tensors:
    r"""Split, flatten, scale and normalise a :class:`~byhand.data.Dataset`; move it to ``device``.

    The training images are split by :func:`split_indices` (a ``validation`` fraction,
    drawn with ``split_seed``). Every image becomes a row of :math:`K = 784` features
    :math:`x_{nk} = (p_{nk}/255 - \mu)/\sigma`, with :math:`\mu, \sigma` from the
    rows that are trained on only (:func:`normalisation`), so the validation and test
    images are transformed exactly as the training images and tell the network nothing.
    ``limit`` keeps the first ``limit`` images of each file (a quick run) before the
    split. The ``uint8`` images travel to the device and are converted there, which
    moves a quarter of the bytes of a float32 copy.

    Examples:
        >>> from byhand.data import Dataset
        >>> gen = torch.Generator().manual_seed(0)
        >>> images = torch.randint(0, 256, (12, 2, 2), generator=gen, dtype=torch.uint8)
        >>> labels = torch.arange(12) % 3
        >>> tiny = Dataset("tiny", images, labels, images[:4], labels[:4], ("a", "b", "c"))
        >>> data = prepare(tiny)
        >>> data.x_train.shape, data.x_valid.shape, data.x_test.shape, data.y_train.dtype
        (torch.Size([10, 4]), torch.Size([2, 4]), torch.Size([4, 4]), torch.int64)
        >>> round(float(data.x_train.mean()), 4), round(float(data.x_train.std()), 4)
        (0.0, 1.0)
    """
    if limit is not None and limit < 1:
        raise ValueError(f"prepare: limit must be a positive number of images; got {limit}")
    device = torch.device("cpu") if device is None else torch.device(device)
    images, labels = dataset.train_images[:limit], dataset.train_labels[:limit]
    train_rows, valid_rows = split_indices(images.shape[0], validation, split_seed)
    test_images, test_labels = dataset.test_images[:limit], dataset.test_labels[:limit]
    mean, std = normalisation(images[train_rows])
    return Tensors(
        x_train=_features(images[train_rows], mean, std, device, dtype),
        y_train=labels[train_rows].to(device=device, dtype=torch.int64),
        x_valid=_features(images[valid_rows], mean, std, device, dtype),
        y_valid=labels[valid_rows].to(device=device, dtype=torch.int64),
        x_test=_features(test_images, mean, std, device, dtype),
        y_test=test_labels.to(device=device, dtype=torch.int64),
    )


def batch_indices(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device | str | None = None
) -> Iterator[Tensor]:
    """Yield the row indices of each minibatch of one epoch, on ``device``.

    The permutation of ``range(n)`` is drawn by ``torch.randperm`` from ``generator``
    (a CPU generator, so the same seed gives the same batches on every device) and
    moved to the device once per epoch, not per step; the last batch holds the remaining ``n % batch_size``
    rows when ``batch_size`` does not divide ``n``.

    Examples:
        >>> list(batch_indices(5, 2, torch.Generator().manual_seed(0)))
        [tensor([4, 0]), tensor([1, 3]), tensor([2])]
    """
    if batch_size < 1:
        raise ValueError(f"batch_indices: batch_size must be positive; got {batch_size}")
    order = torch.randperm(n, generator=generator).to(device or "cpu")
    yield from order.split(batch_size)  # type: ignore[no-untyped-call]  # unannotated in torch
