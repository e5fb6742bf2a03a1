r"""The chunked sweep: a linear layer's cross-entropy one block of logits at a time.

:func:`sweep` takes a :class:`Sweep` (the input :math:`a_{np}`, the weight
:math:`W_{jp}`, the bias :math:`b_j`, the target and the options) and goes over the
rows in chunks; a chunk's logits :math:`x_{nj} = \sum_p a_{np} W_{jp} + b_j` are formed,
turned into the chunk's losses and, when an upstream :math:`g_n` is given, into its rows
of :math:`G_{nj} = \partial L/\partial x_{nj}`, which are multiplied into

.. math::

   \begin{aligned}
   \frac{\partial L}{\partial a_{np}} &= \sum_j G_{nj} W_{jp}, \\
   \frac{\partial L}{\partial W_{jp}} &= \sum_n G_{nj} a_{np}, \\
   \frac{\partial L}{\partial b_j} &= \sum_n G_{nj}
   \end{aligned}

and dropped. With ``vocab`` the classes go in blocks too: the log-sum-exp of a row is
then accumulated with the online rule of :func:`byhand.softmax.logsumexp_update`, and each
block of logits is formed twice (once for :math:`\mathrm{lse}_n`, once for :math:`G`).

Precision. The matmuls run in the input's dtype (bfloat16 or float16 as a language
model trains); the logits of a chunk are then taken to float32 (the *working* dtype),
where the log-sum-exp, the losses and :math:`G` are formed, and the weight and bias
gradients are accumulated over the chunks in float32: a sum of hundreds of chunks'
products in bfloat16 would lose all but the largest. The input gradient of a row needs
no accumulation over chunks (only over the vocabulary blocks, which go through a
float32 chunk buffer) and is written in the input's dtype.

Half precision, by default (no ``chunk_size``, class-index targets without smoothing),
goes the other way round: a loss-only pass gives :math:`\mathrm{lse}_n`, then the
classes go in blocks with every row at once (``_by_vocabulary``), so a block's
weight gradient is one product over all rows, summed in float32 inside the multiply and
written once, and only the input gradient (:math:`N \times H`) is summed in float32.
That costs one more product than the chunks of rows, and saves the passes over a
float32 accumulator of :math:`V \times H` numbers, which cost more on the CPU that
chapter 10 measures both orders on.

Evaluation. Without an upstream gradient (``no_grad``, ``inference_mode``, nothing
requiring one) the sweep forms the losses only, with the same formulas: no gradient
buffer exists, so by default twice :func:`default_chunk_size` rows of float32 logits go
at once (in half precision their bytes in the input's dtype: twice as many rows, taken
to float32 a quarter at a time), and the logits become their exponentials in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .cross_entropy_core import (
    CrossEntropyOptions,
    effective_target,
    input_gradient,
    per_sample_loss,
    row_mask,
    soft_cap,
    soft_cap_backward,
    softmax_parts,
    target_indices,
    target_weight,
    z_loss,
    z_loss_gradient,
)
from .softmax import logsumexp_update, opmath_dtype

__all__ = [
    "Grads", "Needs", "Sweep", "SweepResult", "chunk_gradient", "default_chunk_size", "logits",
    "spans", "sweep",
]

Grads = tuple[Tensor | None, Tensor | None, Tensor | None]


class Needs(NamedTuple):
    """Which gradients a backward computes: ``Needs(linear_weight=False)`` skips :math:`\\partial W`.

    A plain ``(bool, bool, bool)`` tuple, in the order of the inputs, works too.

    Examples:
        >>> Needs(linear_bias=False)
        Needs(input=True, linear_weight=True, linear_bias=False)
    """

    input: bool = True
    linear_weight: bool = True
    linear_bias: bool = True


_ALL = Needs()


class SweepResult(NamedTuple):
    """What :func:`sweep` returns: per-row losses, per-row z-losses (None without), gradients."""

    losses: Tensor
    z_losses: Tensor | None
    grads: Grads


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
        """The working dtype: float32 for half inputs, else the input's."""
        return opmath_dtype(self.a.dtype)

    @property
    def plain_count(self) -> bool:
        r"""Every row kept and no class weights: every :math:`\mu_n w_{y_n}` is 1."""
        return self.every_kept and self.options.weight is None

    @property
    def loss_dtype(self) -> torch.dtype:
        """The per-row losses' dtype."""
        if not self.t.is_floating_point():
            return self.work
        dtype = torch.promote_types(self.work, self.t.dtype)
        weight = self.options.weight
        return dtype if weight is None else torch.promote_types(dtype, weight.dtype)


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


def _accumulate(acc: Tensor, x: Tensor, y: Tensor, in_place: bool) -> Tensor:
    """``acc + x @ y``, in place when allowed (in float32 for a half-precision product)."""
    if not in_place:
        return acc + (x @ y).to(acc.dtype)
    if x.dtype == acc.dtype:
        return acc.addmm_(x, y)
    return acc.add_(x @ y)


def _add_weight_product(acc: Tensor, low: Tensor, a: Tensor) -> None:
    r""":math:`\partial W_{jp} \mathrel{+}= \sum_n G_{nj} a_{np}` into the accumulator.

    In half precision the product is formed in the input's dtype and added to the
    float32 accumulator a slice of classes at a time, each slice's product at most half
    the size of the chunk's :math:`G`, so no second weight-sized tensor exists.
    """
    if low.dtype == acc.dtype:
        acc.addmm_(low.t(), a)
        return
    step = max(1, low.numel() // (2 * a.shape[1]))
    for piece in spans(low.shape[1], step):
        acc[piece].add_(low[:, piece].t() @ a)


class _Out:
    """The three gradients being accumulated (float32 for the weight and the bias)."""

    def __init__(self, p: Sweep, wanted: Needs, in_place: bool) -> None:
        self.in_place, self.wants_input = in_place, wanted.input
        self.input = p.a.new_empty(p.a.shape) if wanted.input and in_place else None
        self.rows: list[Tensor] = []  # the input gradient, chunk by chunk, out of place
        self.weight = (p.w.new_zeros(p.w.shape, dtype=p.work)
                       if wanted.linear_weight else None)
        self.bias = (p.w.new_zeros(p.w.shape[0], dtype=p.work)
                     if p.b is not None and wanted.linear_bias else None)

    def add(self, grad: Tensor, a: Tensor, w: Tensor, cols: slice,
            d_rows: Tensor | None, low: Tensor | None = None) -> Tensor | None:
        r"""Pass one block :math:`G` of the logits' gradient to the weight and the bias,
        and add the input's share to ``d_rows`` (a float32 chunk buffer, returned).
        ``low`` is :math:`G` already in the input's dtype."""
        low = grad.to(a.dtype) if low is None else low
        at = torch.arange(cols.start, cols.stop, device=a.device)
        if self.weight is not None:
            if self.in_place:
                _add_weight_product(self.weight[cols], low, a)
            else:
                self.weight = self.weight.index_add(0, at, (low.t() @ a).to(self.weight.dtype))
        if self.bias is not None:
            if self.in_place:
                self.bias[cols].add_(grad.sum(0))
            else:
                self.bias = self.bias.index_add(0, at, grad.sum(0).to(self.bias.dtype))
        if d_rows is None:
            return None
        return _accumulate(d_rows, low, w, self.in_place)

    def set_rows(self, rows: slice, d_rows: Tensor) -> None:
        """Store a chunk's input gradient (rounded to the input's dtype)."""
        if self.input is not None:
            self.input[rows] = d_rows
        elif self.wants_input:
            self.rows.append(d_rows)

    def grads(self, dtype: torch.dtype) -> Grads:
        """The input gradient (in ``dtype``), and the weight's and bias's accumulators."""
        d_input = self.input
        if d_input is None and self.wants_input and self.rows:
            d_input = torch.cat(self.rows).to(dtype)
        return d_input, self.weight, self.bias


def chunk_gradient(p: Sweep, x: Tensor | None, parts: tuple[Tensor, Tensor, Tensor], t: Tensor,
                   g: Tensor, *, in_place: bool) -> Tensor:
    r""":math:`G_{nj}` of a chunk from its capped logits ``x`` and :func:`softmax_parts`.

    :math:`G_{nj} = \big[g_n(s_{nj}\sum_k\tilde t_{nk} - \tilde t_{nj})
    + 2\zeta g_n\mu_n\mathrm{lse}_n s_{nj}\big]\,(1 - (x_{nj}/c)^2)`: the
    core's gradient from the softmax, the z-loss's, the soft cap's chain factor (each
    only when its option is set; ``x`` is needed only with a soft cap). ``in_place``
    reuses the exponentials' buffer.
    """
    o = p.options
    shift, e, sums = parts
    s = e.div_(sums) if in_place else e / sums
    extra = None
    if o.lse_square_scale:
        lse = (shift + sums.log()).squeeze(1)
        extra = z_loss_gradient(s, g, row_mask(t, o, s.dtype), lse, o.lse_square_scale)
    grad = input_gradient(s, g, t, o, overwrite=in_place)
    grad = grad if extra is None else grad.add_(extra)
    if o.softcap is None or x is None:
        return grad
    return soft_cap_backward(grad, x, o.softcap)


def _whole(p: Sweep, rows: slice, g: Tensor | None, out: _Out) -> tuple[Tensor, Tensor | None]:
    """Losses (and gradients) of a chunk of rows, all classes at once, by the core's formulas."""
    a, t, o = p.a[rows], p.t[rows], p.options
    x = logits(p, a)
    shift, e, sums = softmax_parts(x)
    log_sums = sums.log()
    per = per_sample_loss(x, shift, log_sums, t, o).to(p.loss_dtype)
    z = None
    if o.lse_square_scale:
        lse, mask = (shift + log_sums).squeeze(1), row_mask(t, o, x.dtype)
        z = z_loss(lse, mask, o.lse_square_scale)
        per = per + z
    if g is None:
        return per, z
    capped = x if o.softcap is not None else None
    del x
    grad = chunk_gradient(p, capped, (shift, e, sums), t, g, in_place=out.in_place)
    del capped, shift, e
    low = grad.to(a.dtype)
    out.add(grad, a, p.w, slice(0, p.w.shape[0]), None, low)
    del grad
    out.set_rows(rows, low @ p.w)
    return per, z


class _Labels(NamedTuple):
    r"""Class-index targets read once for the whole batch: ``y`` ``(N, 1)`` (an ignored
    one set to 0), the mask :math:`\mu_n` (``keep``) and :math:`\mu_n w_{y_n}` (``wy``);
    ``keep`` and ``wy`` are None when every :math:`\mu_n w_{y_n}` is 1 (``Sweep.plain_count``)."""

    y: Tensor
    keep: Tensor | None
    wy: Tensor | None


def _labels(p: Sweep) -> _Labels | None:
    """The targets read once where :func:`_loss_only` applies (class indices without
    smoothing, at least one class); None elsewhere."""
    o = p.options
    if p.t.is_floating_point() or o.label_smoothing > 0 or p.w.shape[0] == 0:
        return None
    if p.plain_count:
        return _Labels(p.t.long().unsqueeze(1), None, None)
    y, keep = target_indices(p.t, o.ignore_index)
    return _Labels(y.unsqueeze(1), keep, target_weight(y, keep, o.weight, p.work))


def _loss_only(p: Sweep, rows: int, labels: _Labels) -> tuple[Tensor, Tensor | None, Tensor]:
    r"""Per-row losses, z-losses (None without) and :math:`\mathrm{lse}_n` of the whole batch.

    The numbers of :func:`_whole`,
    :math:`L_n = \mu_n w_{y_n}\big(\log\sum_k e^{x_{nk} - m_n} - (x_{n y_n} - m_n)\big)`
    with :math:`m_n = \max_k x_{nk}`, for less work: the targets are read once (and the
    mask is not formed when no row is ignored), and the float32 logits become their
    exponentials in place. The product runs over as many rows at a time as fill the bytes
    of ``rows`` rows of float32 logits: ``rows`` in float32, twice as many in half
    precision, whose product is then taken to float32 a quarter of ``rows`` (at least 16
    rows) at a time, into one buffer. A large matmul is cheaper per row than a small one,
    and small float32 pieces stay in the processor's cache between the passes.
    """
    o = p.options
    w_t = p.w.t()
    block = rows * (p.work.itemsize // p.a.dtype.itemsize)
    buffer = None
    if block != rows:
        piece = max(_MIN_PIECE, min(rows, p.a.shape[0]) // 4)
        buffer = p.a.new_empty((piece, w_t.shape[1]), dtype=p.work)
    shifts, sums, picked = [], [], []
    for span in spans(p.a.shape[0], block):
        a = _take(p.a, span)
        product = a @ w_t if p.b is None else torch.addmm(p.b, a, w_t)
        picked.append(product.gather(1, _take(labels.y, span)))
        for x in (product,) if buffer is None else torch.split(product, buffer.shape[0]):
            x = soft_cap(x if buffer is None else _fill(buffer, x), o.softcap)
            shift = x.amax(1, keepdim=True)
            shifts.append(shift)
            sums.append(x.sub_(shift).exp_().sum(1, keepdim=True))
        del product, x  # before the next block's product exists
    shift, sum_e, x_y = (torch.cat(t) if len(t) > 1 else t[0] for t in (shifts, sums, picked))
    x_y = soft_cap(x_y.to(p.work), o.softcap)
    log_sums = sum_e.log_()
    per = (log_sums - (x_y - shift)).squeeze(1)
    lse = (shift + log_sums).squeeze(1)
    keep = labels.keep
    if keep is not None and labels.wy is not None:
        per = torch.where(keep, labels.wy * per, 0.0)
    if not o.lse_square_scale:
        return per, None, lse
    mask = per.new_ones(()) if keep is None else keep.to(p.work)
    z = z_loss(lse, mask, o.lse_square_scale)
    return per + z, z, lse


def _by_vocabulary(p: Sweep, g: Tensor, needs: Needs, labels: _Labels, rows: int,
                   block: int) -> SweepResult:
    r"""Losses and gradients in half precision, the classes in blocks, every row at once.

    A loss-only pass (:func:`_loss_only`) gives :math:`L_n` and :math:`\mathrm{lse}_n`;
    then each block :math:`B` of classes forms all rows' logits once more and

    .. math::

       G_{nj} = g_n\mu_n\big(s_{nj}(w_{y_n} + 2\zeta\,\mathrm{lse}_n) - w_{y_n}[j = y_n]\big)
       \,(1 - (x_{nj}/c)^2), \qquad
       \frac{\partial L}{\partial W_{jp}} = \sum_n G_{nj} a_{np} \quad (j \in B):

    one product over all :math:`N` rows, which the multiply sums in float32 inside and
    rounds once, so the weight gradient needs no float32 accumulator of :math:`V \times H`
    numbers and is written once. The input gradient, summed over the blocks, goes into a
    float32 buffer of :math:`N \times H`. A block has ``block`` classes
    (:func:`_class_block`); the loss-only pass takes twice ``rows`` rows at a time.
    """
    o, a, w = p.options, p.a, p.w
    per, z, lse = _loss_only(p, min(a.shape[0], 2 * rows), labels)
    g = g if labels.keep is None else torch.where(labels.keep, g, 0.0)
    target = g if labels.wy is None else g * labels.wy  # g_n mu_n w_{y_n}
    scale = target
    if o.lse_square_scale:
        mask = 1.0 if labels.keep is None else labels.keep.to(p.work)
        scale = target + 2 * o.lse_square_scale * g * mask * lse
    d_a = a.new_zeros(a.shape, dtype=p.work) if needs.input else None
    d_w = w.new_empty(w.shape) if needs.linear_weight else None
    d_b = w.new_empty(w.shape[0], dtype=p.work) if p.b is not None and needs.linear_bias else None
    y = labels.y
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
    return SweepResult(per, z, (d_input, d_w, d_b))


def _class_block(n_rows: int, n_classes: int, rows: int) -> int | None:
    """Classes per block of :func:`_by_vocabulary`: as many logits as ``rows`` rows of
    every class; None when that is fewer than :data:`_MIN_BLOCK` classes (and fewer than
    all), where the blocks' products would be too thin and the chunks of rows go instead."""
    block = min(n_classes, rows * n_classes // max(1, n_rows))
    return block if block >= min(n_classes, _MIN_BLOCK) else None


#: The fewest classes in a block of :func:`_by_vocabulary`: thinner products are slow.
_MIN_BLOCK = 128


#: The fewest rows taken to float32 at once: fewer would cost more in calls than in cache.
_MIN_PIECE = 16


def _take(t: Tensor, rows: slice) -> Tensor:
    """Rows ``rows`` of ``t``: ``t`` itself when they are all of its rows."""
    return t if rows.start == 0 and rows.stop >= t.shape[0] else t[rows]


def _fill(buffer: Tensor, rows: Tensor) -> Tensor:
    """``rows`` copied into the first rows of ``buffer`` (converting the dtype); that view."""
    return _take(buffer, slice(0, rows.shape[0])).copy_(rows)


def _online(p: Sweep, rows: slice, g: Tensor | None, out: _Out) -> tuple[Tensor, Tensor | None]:
    r"""Losses (and gradients) of a chunk of rows, the classes in blocks (online log-sum-exp).

    With :math:`T_n = \sum_k \tilde t_{nk}`, the loss is :math:`L_n = T_n
    \mathrm{lse}_n - \sum_k \tilde t_{nk} x_{nk}` (plus the z-loss
    :math:`\zeta\mu_n\mathrm{lse}_n^2`) and the logits' gradient
    :math:`G_{nj} = g_n\big(s_{nj}(T_n + 2\zeta\mu_n\mathrm{lse}_n) - \tilde t_{nj}\big)`:
    one pass over the blocks for :math:`\mathrm{lse}_n`, :math:`T_n` and
    :math:`\sum_k \tilde t_{nk}(x_{nk} - \hat m_n)` (:math:`\hat m_n`, the first block's
    maximum where finite, keeps the subtraction at the scale of the loss), a second pass
    for :math:`G`. A product :math:`\tilde t_{nk} x_{nk}` with :math:`\tilde t_{nk} = 0`
    counts as 0 even where :math:`x_{nk} = -\infty` (a masked class).
    """
    a, t, o = p.a[rows], p.t[rows], p.options
    n_rows, n_classes, work = a.shape[0], p.w.shape[0], p.work
    like = a.new_empty((), dtype=work).expand(n_rows, n_classes)
    blocks = spans(n_classes, p.vocab or n_classes)

    def block(cols: slice) -> tuple[Tensor, Tensor]:
        return logits(p, a, cols), effective_target(t, o, like, cols, n_classes)

    m = a.new_full((n_rows, 1), -math.inf, dtype=work)
    r = a.new_zeros(n_rows, 1, dtype=work)
    tx = a.new_zeros(n_rows, dtype=p.loss_dtype)
    total = a.new_zeros(n_rows, dtype=p.loss_dtype)
    ref = m
    for i, cols in enumerate(blocks):
        x, q = block(cols)
        m, r = logsumexp_update(m, r, x)
        if i == 0:
            ref = torch.where(torch.isfinite(m), m, 0.0)
        tx += torch.where(q != 0, q * (x - ref), 0.0).sum(1)
        total += q.sum(1)
    lse = m + r.log()
    per = total * (lse - ref).squeeze(1) - tx
    mask = row_mask(t, o, work)
    z = None
    if o.lse_square_scale:
        z = z_loss(lse.squeeze(1), mask, o.lse_square_scale).to(p.loss_dtype)
        per = per + z
    if g is None:
        return per, z
    scale = total.to(work) + 2 * o.lse_square_scale * mask * lse.squeeze(1)
    g = torch.where(mask > 0, g, 0.0)  # an ignored row's 0/0 mean stays 0
    d_rows = a.new_zeros(a.shape, dtype=work) if out.wants_input else None
    for cols in blocks:
        x, q = block(cols)
        s = (x - lse).exp_()
        grad = (s * scale.unsqueeze(1) - q) * g.unsqueeze(1)
        grad = soft_cap_backward(grad, x, o.softcap)
        d_rows = out.add(grad, a, p.w[cols], cols, d_rows)
    if d_rows is not None:
        out.set_rows(rows, d_rows.to(a.dtype))
    return per, z


def sweep(p: Sweep, g: Tensor | None = None, needs: Needs = _ALL, *,
          in_place: bool = True) -> SweepResult:
    """Per-row losses (``p.loss_dtype``), z-losses and, when ``g`` (one per row) is given,
    the gradients (input: the input's dtype; weight and bias: the working dtype, or the
    input's for the weight in half precision's default order).
    Without ``g`` it forms the losses alone (see *Evaluation* above).

    ``in_place=False`` builds every gradient out of place (the input gradient chunk by
    chunk, then concatenated), so that ``g`` may be a batch of upstream gradients under
    :func:`torch.func.vmap` (as ``is_grads_batched`` makes it); it holds one more
    weight-sized tensor while it adds.

    Examples:
        >>> p = Sweep(torch.eye(2), torch.eye(3, 2), None, torch.tensor([0, 1]),
        ...           CrossEntropyOptions(), rows=1, vocab=2)
        >>> losses, _, (d_a, d_w, d_b) = sweep(p, torch.ones(2))
        >>> losses, d_b
        (tensor([0.5514, 0.5514]), None)
    """
    n_rows = p.a.shape[0]
    chunk = p.rows or default_chunk_size(n_rows, p.a.shape[1])
    online = p.vocab is not None and p.vocab < p.w.shape[0]
    block = _class_block(n_rows, p.w.shape[0], chunk)
    by_vocabulary = in_place and p.rows is None and p.a.dtype != p.work and block is not None
    labels = _labels(p) if (g is None or by_vocabulary) and not online and n_rows else None
    if labels is not None and g is None:  # the loss only: no gradient buffers, so twice the rows
        per, z, _ = _loss_only(p, p.rows or min(n_rows, 2 * chunk), labels)
        return SweepResult(per, z, (None, None, None))
    if labels is not None and g is not None and block is not None:
        return _by_vocabulary(p, g, Needs(*needs), labels, chunk, block)
    rows_fn = _online if online else _whole
    out = _Out(p, Needs(*needs) if g is not None else Needs(False, False, False), in_place)
    losses, z_losses = [], []
    for rows in spans(n_rows, chunk):
        per, z = rows_fn(p, rows, None if g is None else g[rows], out)
        losses.append(per)
        z_losses.append(z)
    if not losses:
        empty = p.a.new_zeros(0, dtype=p.loss_dtype)
        z_none = empty if p.options.lse_square_scale else None
        return SweepResult(empty, z_none, out.grads(p.a.dtype))
    zs = None if z_losses[0] is None else torch.cat([z for z in z_losses if z is not None])
    return SweepResult(torch.cat(losses), zs, out.grads(p.a.dtype))
