"""The ``reduction`` argument of PyTorch's losses: its names and its legacy spellings.

Every loss in ``byhand`` reduces its per-element losses :math:`L_n` as PyTorch does:
``"none"`` returns them, ``"sum"`` returns :math:`\\sum_n L_n`, ``"mean"`` divides that
sum by a denominator the loss defines. Before ``reduction`` existed, PyTorch spelled
the same choice with two flags, ``size_average`` and ``reduce``, and called the mean
``"elementwise_mean"``; :func:`legacy_reduction` maps those spellings to the modern
name with PyTorch's own warnings.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

__all__ = ["Reduction", "legacy_reduction"]

Reduction = Literal["mean", "sum", "none"]


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """The ``reduction`` that PyTorch's legacy ``size_average``/``reduce`` arguments mean, with its warnings.

    ``'elementwise_mean'`` is an old name of ``'mean'``. Both warn exactly as PyTorch does.

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     warnings.simplefilter("always")
        ...     legacy_reduction(False, None, "mean"), legacy_reduction(None, None, "elementwise_mean")
        ('sum', 'mean')
    """
    if size_average is not None or reduce is not None:
        reduction = torch.nn._reduction.legacy_get_string(size_average, reduce, emit_warning=True)
    if reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated. "
                      "Please use reduction='mean' instead.", stacklevel=3)
        reduction = "mean"
    return reduction
