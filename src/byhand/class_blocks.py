r"""Every row at once: the loss-only pass, and half precision's blocks of classes.

:func:`loss_only` forms the losses and :math:`\mathrm{lse}_n` of a whole batch without
any gradient buffer (on the CPU in half precision by the compiled loop of
:mod:`byhand.native_logsumexp`): it is evaluation's sweep (``no_grad``,
``inference_mode``, nothing requiring a gradient), and the first pass of
:func:`by_vocabulary`. That order, for
half-precision training by default, then goes over blocks of classes with every row, so
that a block's weight gradient is one product, summed in float32 inside the multiply and
written once: no float32 accumulator of :math:`V \times H` numbers exists. Both read
class-index targets once, as :class:`Labels`; :func:`byhand.chunked_sweep.sweep`
decides when they apply.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .cross_entropy_core import (
    soft_cap,
    soft_cap_backward,
    target_indices,
    target_weight,
    z_loss,
    z_loss_factor,
)
from .native_logsumexp import applies, row_losses
from .sweep_problem import Needs, Sweep, SweepResult, logits, spans

__all__ = ["Labels", "RowLosses", "by_vocabulary", "class_block", "loss_only", "read_labels"]


class Labels(NamedTuple):
    r"""Class-index targets read once for the whole batch; ``keep`` and ``wy`` are None
    when every :math:`\mu_n w_{y_n}` is 1 (:attr:`~byhand.sweep_problem.Sweep.plain_count`)."""

    #: The class :math:`y_n` of each row, ``(N,)`` int64; an ignored row's is set to 0.
    y: Tensor
    #: True where the row is not ignored (the mask :math:`\mu_n`).
    keep: Tensor | None
    #: :math:`\mu_n w_{y_n}`, the row's class weight (0 where ignored), in the working dtype.
    wy: Tensor | None


def read_labels(p: Sweep) -> Labels | None:
    """The targets read once where :func:`loss_only` applies (class indices without
    smoothing, at least one class); None elsewhere."""
    o = p.options
    if p.t.is_floating_point() or o.label_smoothing > 0 or p.w.shape[0] == 0:
        return None
    if p.plain_count:
        return Labels(p.t if p.t.dtype == torch.int64 else p.t.long(), None, None)
    y, keep = target_indices(p.t, o.ignore_index)
    return Labels(y, keep, target_weight(y, keep, o.weight, p.work))


class RowLosses(NamedTuple):
    """What :func:`loss_only` returns for a whole batch."""

    #: :math:`L_n` of each row, ``(N,)``, the z-loss included.
    losses: Tensor
    #: :math:`\zeta\mu_n\mathrm{lse}_n^2` of each row, or None without ``lse_square_scale``.
    z_losses: Tensor | None
    #: :math:`\mathrm{lse}_n` of each row.
    lse: Tensor
    #: :math:`\sum_n L_n` on the host, in float64, where the compiled loop added it up
    #: (no row ignored, no class weights, no z-loss); None elsewhere.
    host_sum: float | None


def loss_only(p: Sweep, rows: int, labels: Labels) -> RowLosses:
    r"""Per-row losses, z-losses (None without) and :math:`\mathrm{lse}_n` of the whole batch.

    The numbers of the whole-vocabulary chunks of :func:`byhand.chunked_sweep.sweep`,
    :math:`L_n = \mu_n w_{y_n}\big(\log\sum_k e^{x_{nk} - m_n} - (x_{n y_n} - m_n)\big)`
    with :math:`m_n = \max_k x_{nk}`, for less work: the targets are read once (and the
    mask is not formed when no row is ignored). The product runs over as many rows at a
    time as fill the bytes of ``rows`` rows of float32 logits: ``rows`` in float32, twice
    as many in half precision. A large matmul is cheaper per row than a small one.
    Without a soft cap, half-precision logits on the CPU go to the compiled loop of
    :mod:`byhand.native_logsumexp`, one read per row, which also returns
    :math:`\sum_n L_n`; elsewhere PyTorch's operators make the passes
    (:func:`_operator_losses`).
    """
    o = p.options
    block = rows * (p.work.itemsize // p.a.dtype.itemsize)
    host_sum = None
    if o.softcap is None and applies(p.a):
        per, lse, host_sum = _compiled_losses(p, block, labels)
    else:
        per, lse = _operator_losses(p, rows, block, labels)
    keep = labels.keep
    if keep is not None and labels.wy is not None:
        per, host_sum = torch.where(keep, labels.wy * per, 0.0), None
    if not o.lse_square_scale:
        return RowLosses(per, None, lse, host_sum)
    mask = per.new_ones(()) if keep is None else keep.to(p.work)
    z = z_loss(lse, mask, o.lse_square_scale)
    return RowLosses(per + z, z, lse, None)


def _compiled_losses(p: Sweep, block: int, labels: Labels) -> tuple[Tensor, Tensor, float]:
    r"""The rows' losses :math:`\log\sum_k e^{x_{nk} - m_n} - (x_{n y_n} - m_n)`,
    :math:`\mathrm{lse}_n` (``(N,)`` each, in float32) and the losses' sum, by
    :func:`~byhand.native_logsumexp.row_losses`, ``block`` rows of half-precision logits
    at a time."""
    out = p.a.new_empty((2, p.a.shape[0]), dtype=p.work)
    parts = spans(p.a.shape[0], block)
    host_sum = 0.0
    for span in parts:
        product = F.linear(_take(p.a, span), p.w, p.b)
        host_sum += row_losses(product, _take(labels.y, span),
                               out if len(parts) == 1 else out[:, span])
        del product  # before the next block's product exists
    lse, per = out.unbind()
    return per, lse, host_sum


def _operator_losses(p: Sweep, rows: int, block: int,
                     labels: Labels) -> tuple[Tensor, Tensor]:
    r"""The numbers of :func:`_compiled_losses`, capped, by PyTorch's operators. The
    float32 logits become their exponentials in place; a half-precision product is taken
    to float32 a quarter of ``rows`` (at least 16 rows) at a time, into one buffer, so
    that small float32 pieces stay in the processor's cache between the passes."""
    o = p.options
    w_t = p.w.t()
    buffer = None
    if block != rows:
        piece = max(_MIN_PIECE, min(rows, p.a.shape[0]) // 4)
        buffer = p.a.new_empty((piece, w_t.shape[1]), dtype=p.work)
    shifts, sums, picked = [], [], []
    for span in spans(p.a.shape[0], block):
        a = _take(p.a, span)
        product = a @ w_t if p.b is None else torch.addmm(p.b, a, w_t)
        picked.append(product.gather(1, _take(labels.y, span).unsqueeze(1)))
        for x in (product,) if buffer is None else torch.split(product, buffer.shape[0]):
            x = soft_cap(x if buffer is None else _fill(buffer, x), o.softcap)
            shift = x.amax(1, keepdim=True)
            shifts.append(shift)
            sums.append(x.sub_(shift).exp_().sum(1, keepdim=True))
        del product, x  # before the next block's product exists
    shift, sum_e, x_y = (torch.cat(t) if len(t) > 1 else t[0] for t in (shifts, sums, picked))
    x_y = soft_cap(x_y.to(p.work), o.softcap)
    log_sums = sum_e.log_()
    return (log_sums - (x_y - shift)).squeeze(1), (shift + log_sums).squeeze(1)


def by_vocabulary(p: Sweep, g: Tensor, needs: Needs, labels: Labels, rows: int,
                   block: int) -> SweepResult:
    r"""Losses and gradients in half precision, the classes in blocks, every row at once.

    A loss-only pass (:func:`loss_only`) gives :math:`L_n` and :math:`\mathrm{lse}_n`;
    then each block :math:`B` of classes forms all rows' logits once more and

    .. math::

       \begin{aligned}
       G_{nj} &= g_n\mu_n\big(s_{nj}(w_{y_n} + 2\zeta\,\mathrm{lse}_n) \\
              &\qquad - w_{y_n}[j = y_n]\big) \\
              &\qquad \cdot (1 - (x_{nj}/c)^2), \\
       \frac{\partial L}{\partial W_{jp}} &= \sum_n G_{nj} a_{np} \quad (j \in B):
       \end{aligned}

    one product over all :math:`N` rows, which the multiply sums in float32 inside and
    rounds once, so the weight gradient needs no float32 accumulator of :math:`V \times H`
    numbers and is written once. The input gradient, summed over the blocks, goes into a
    float32 buffer of :math:`N \times H`. A block has ``block`` classes
    (:func:`class_block`); the loss-only pass takes twice ``rows`` rows at a time.
    """
    o, a, w = p.options, p.a, p.w
    per, z, lse, host_sum = loss_only(p, min(a.shape[0], 2 * rows), labels)
    g = g if labels.keep is None else torch.where(labels.keep, g, 0.0)
    target = g if labels.wy is None else g * labels.wy  # g_n mu_n w_{y_n}
    scale = target
    if o.lse_square_scale:
        mask = lse.new_ones(()) if labels.keep is None else labels.keep.to(p.work)
        scale = target + z_loss_factor(g, mask, lse, o.lse_square_scale)
    d_a = a.new_zeros(a.shape, dtype=p.work) if needs.input else None
    d_w = w.new_empty(w.shape) if needs.linear_weight else None
    d_b = w.new_empty(w.shape[0], dtype=p.work) if p.b is not None and needs.linear_bias else None
    y = labels.y.unsqueeze(1)
    for cols in spans(w.shape[0], block):
        x = logits(p, a, cols)
        s = x.sub(lse.unsqueeze(1)) if o.softcap is not None else x.sub_(lse.unsqueeze(1))
        grad = s.exp_().mul_(scale.unsqueeze(1))
        hit = (y >= cols.start) & (y < cols.stop)
        at = torch.where(hit, y - cols.start, 0)
        grad.scatter_add_(1, at, torch.where(hit, -target.unsqueeze(1), 0.0))
        grad = soft_cap_backward(grad, x, o.softcap)
        low = grad.to(a.dtype)
        if d_w is not None:
            torch.mm(low.t(), a, out=d_w[cols])
        if d_b is not None:
            d_b[cols] = grad.sum(0)
        if d_a is not None:
            d_a.add_(low @ w[cols])
    d_input = None if d_a is None else d_a.to(a.dtype)
    return SweepResult(per, z, (d_input, d_w, d_b), host_sum)


def class_block(n_rows: int, n_classes: int, rows: int) -> int | None:
    """Classes per block of :func:`by_vocabulary`: as many logits as ``rows`` rows of
    every class; None when that is fewer than :data:`_MIN_BLOCK` classes (and fewer than
    all), where the blocks' products would be too thin and the chunks of rows go instead."""
    block = min(n_classes, rows * n_classes // max(1, n_rows))
    return block if block >= min(n_classes, _MIN_BLOCK) else None


#: The fewest classes in a block of :func:`by_vocabulary`: thinner products are slow.
_MIN_BLOCK = 128


#: The fewest rows taken to float32 at once: fewer would cost more in calls than in cache.
_MIN_PIECE = 16


def _take(t: Tensor, rows: slice) -> Tensor:
    """Rows ``rows`` of ``t``: ``t`` itself when they are all of its rows."""
    return t if rows.start == 0 and rows.stop >= t.shape[0] else t[rows]


def _fill(buffer: Tensor, rows: Tensor) -> Tensor:
    """``rows`` copied into the first rows of ``buffer`` (converting the dtype); that view."""
    return _take(buffer, slice(0, rows.shape[0])).copy_(rows)
