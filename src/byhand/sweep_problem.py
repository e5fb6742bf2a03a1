r"""The problem a chunked sweep solves, and the pieces every order of the sweep shares.

A :class:`Sweep` holds the input :math:`a_{np}`, the weight :math:`W_{jp}`, the bias
:math:`b_j`, the target and the options of one batched call; :func:`logits` forms a
block of its logits :math:`x_{nj} = \sum_p a_{np} W_{jp} + b_j` (soft-capped when asked),
the product in the input's dtype and the result in the *working* dtype (float32 for
bfloat16 and float16 inputs); :func:`stand_in` gives what a check or a count needs of the
logits (their shape and dtype) with one element of storage.
:func:`byhand.chunked_sweep.sweep` goes over the rows in chunks of
:func:`default_chunk_size`; :mod:`byhand.class_blocks` goes over the classes with every
row at once. Both return a :class:`SweepResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .cross_entropy_core import CrossEntropyOptions, soft_cap
from .softmax import opmath_dtype

__all__ = ["Grads", "Needs", "Sweep", "SweepResult", "default_chunk_size", "logits", "spans",
           "stand_in"]

Grads = tuple[Tensor | None, Tensor | None, Tensor | None]


class Needs(NamedTuple):
    """Which gradients a backward computes: ``Needs(linear_weight=False)`` skips :math:`\\partial W`.

    A plain ``(bool, bool, bool)`` tuple, in the order of the inputs, works too.

    Examples:
        >>> Needs(linear_bias=False)
        Needs(input=True, linear_weight=True, linear_bias=False)
    """

    #: The input's gradient :math:`\partial L/\partial a_{np}`.
    input: bool = True
    #: The weight's gradient :math:`\partial L/\partial W_{jp}`.
    linear_weight: bool = True
    #: The bias's gradient :math:`\partial L/\partial b_j` (ignored without a bias).
    linear_bias: bool = True


class SweepResult(NamedTuple):
    """What a sweep returns: per-row losses, per-row z-losses (None without), gradients
    and, where known for free, the losses' sum on the host."""

    #: :math:`L_n` of each row, ``(N,)``, the z-loss included, in :attr:`Sweep.loss_dtype`.
    losses: Tensor
    #: :math:`\zeta\mu_n\mathrm{lse}_n^2` of each row, or None without ``lse_square_scale``.
    z_losses: Tensor | None
    #: The input's, weight's and bias's gradients for the upstream :math:`g_n`; each None
    #: where not wanted (or without :math:`g_n`).
    grads: Grads
    #: :math:`\sum_n L_n` on the host, in float64, where the sweep has it for free (the
    #: compiled loop of :mod:`byhand.native_logsumexp`); None elsewhere.
    host_sum: float | None = None


@dataclass(frozen=True)
class Sweep:
    r"""A batched problem, ``a`` ``(N, H)``, ``w`` ``(V, H)``, ``b`` ``(V,)``, ready to sweep.

    ``rows`` and ``vocab`` are the chunk and block sizes (None: :func:`default_chunk_size`
    rows, the whole vocabulary); ``loss_dtype`` is the dtype of the per-row losses (the
    working one, promoted with the target's and weight's for probabilities).
    ``every_kept`` says that the target holds class indices that were read in validation
    and none is ``ignore_index`` (:func:`byhand.cross_entropy_checks.validate_call`):
    then the mask :math:`\mu_n` is all ones and need not be formed.

    Examples:
        >>> p = Sweep(torch.eye(2), torch.eye(3, 2), None, torch.tensor([0, 1]),
        ...           CrossEntropyOptions(), rows=1, vocab=None)
        >>> p.work, p.loss_dtype
        (torch.float32, torch.float32)
    """

    a: Tensor
    w: Tensor
    b: Tensor | None
    t: Tensor
    options: CrossEntropyOptions
    rows: int | None
    vocab: int | None
    every_kept: bool = False

    @property
    def work(self) -> torch.dtype:
        """The working dtype, float32 for half inputs and the input's otherwise."""
        return opmath_dtype(self.a.dtype)

    @property
    def plain_count(self) -> bool:
        r"""Whether every row is kept and no class is weighted, so every :math:`\mu_n w_{y_n}` is 1."""
        return self.every_kept and self.options.weight is None

    def logits_like(self) -> Tensor:
        """A stand-in of the batched logits: shape ``(N, V)``, the working dtype, the
        input's device, and one element of storage (:func:`stand_in`)."""
        return stand_in(self.a, (self.a.shape[0], self.w.shape[0]), self.work)

    @property
    def loss_dtype(self) -> torch.dtype:
        """The per-row losses' dtype."""
        if not self.t.is_floating_point():
            return self.work
        dtype = torch.promote_types(self.work, self.t.dtype)
        weight = self.options.weight
        return dtype if weight is None else torch.promote_types(dtype, weight.dtype)


def stand_in(t: Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """A tensor of ``shape`` and ``dtype`` on ``t``'s device with one element of storage
    (every stride 0), made in one call: what a check or a count needs of the logits.

    Examples:
        >>> x = stand_in(torch.zeros(2), (4096, 50000), torch.float32)
        >>> x.shape, x.stride(), x.untyped_storage().nbytes()
        (torch.Size([4096, 50000]), (0, 0), 4)
    """
    return t.new_empty_strided(shape, (0,) * len(shape), dtype=dtype)


def default_chunk_size(n_rows: int, in_features: int) -> int:
    r"""Rows per chunk when ``chunk_size`` is None: :math:`H/2`, at least 32, at most :math:`N`.

    A chunk's logits, ``(chunk_size, V)``, then hold at most
    :math:`\max(H/2, 32)\,V` numbers: half the weight gradient ``(V, H)`` that the call
    returns anyway when :math:`H \ge 64`, and at most :math:`32V` (twice the weight
    gradient at :math:`H = 16`) below, whatever the vocabulary size.

    Examples:
        >>> default_chunk_size(4096, 512), default_chunk_size(4096, 16), default_chunk_size(10, 512)
        (256, 32, 10)
    """
    return max(1, min(n_rows, max(32, in_features // 2)))


def spans(total: int, size: int) -> list[slice]:
    """``total`` positions in consecutive slices of ``size`` (the last one shorter).

    Examples:
        >>> spans(5, 2)
        [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    return [slice(lo, min(lo + size, total)) for lo in range(0, total, size)]


def logits(p: Sweep, a: Tensor, cols: slice | None = None) -> Tensor:
    r"""Capped logits :math:`x_{nj}` of rows ``a`` and classes ``cols``, in the working dtype.

    The product runs in the input's dtype; a half-precision result is taken to float32.
    """
    w = p.w if cols is None else p.w[cols]
    b = None if p.b is None or cols is None else p.b[cols]
    b = p.b if cols is None else b
    x = a @ w.t() if b is None else torch.addmm(b, a, w.t())
    return soft_cap(x.to(p.work), p.options.softcap)
