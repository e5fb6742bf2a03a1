r"""The chunked sweep: a linear layer's cross-entropy one block of logits at a time.

:func:`sweep` takes a :class:`~byhand.sweep_problem.Sweep` (the input :math:`a_{np}`,
the weight :math:`W_{jp}`, the bias :math:`b_j`, the target and the options) and goes
over the rows in chunks; a chunk's logits :math:`x_{nj} = \sum_p a_{np} W_{jp} + b_j`
are formed, turned into the chunk's losses and, when an upstream :math:`g_n` is given,
into its rows of :math:`G_{nj} = \partial L/\partial x_{nj}`, which are multiplied into

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
classes go in blocks with every row at once (:func:`byhand.class_blocks.by_vocabulary`),
so a block's weight gradient is one product over all rows, summed in float32 inside the
multiply and written once, and only the input gradient (:math:`N \times H`) is summed in
float32.
That costs one more product than the chunks of rows, and saves the passes over a
float32 accumulator of :math:`V \times H` numbers, which cost more on the CPU that
chapter 10 measures both orders on.

Evaluation. Without an upstream gradient (``no_grad``, ``inference_mode``, nothing
requiring one) the sweep forms the losses only, with the same formulas
(:func:`byhand.class_blocks.loss_only`): no gradient buffer exists, so by default twice
:func:`~byhand.sweep_problem.default_chunk_size` rows of float32 logits go at once (in
half precision their bytes in the input's dtype: twice as many rows, which on the CPU
the compiled loop of :mod:`byhand.native_logsumexp` reads once each).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .class_blocks import by_vocabulary, class_block, loss_only, read_labels
from .cross_entropy_core import (
    effective_target,
    input_gradient,
    per_sample_loss,
    row_mask,
    soft_cap_backward,
    softmax_parts,
    z_loss,
    z_loss_gradient,
)
from .softmax import logsumexp_update
from .sweep_problem import (
    Grads,
    Needs,
    Sweep,
    SweepResult,
    default_chunk_size,
    logits,
    spans,
    stand_in,
)

__all__ = ["chunk_gradient", "sweep"]

_ALL = Needs()


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
    like = stand_in(a, (n_rows, n_classes), work)
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
        >>> from byhand.cross_entropy_core import CrossEntropyOptions
        >>> p = Sweep(torch.eye(2), torch.eye(3, 2), None, torch.tensor([0, 1]),
        ...           CrossEntropyOptions(), rows=1, vocab=2)
        >>> losses, _, (d_a, d_w, d_b), _ = sweep(p, torch.ones(2))
        >>> losses, d_b
        (tensor([0.5514, 0.5514]), None)
    """
    n_rows = p.a.shape[0]
    chunk = p.rows or default_chunk_size(n_rows, p.a.shape[1])
    online = p.vocab is not None and p.vocab < p.w.shape[0]
    block = class_block(n_rows, p.w.shape[0], chunk)
    classes_first = in_place and p.rows is None and p.a.dtype != p.work and block is not None
    labels = read_labels(p) if (g is None or classes_first) and not online and n_rows else None
    if labels is not None and g is None:  # the loss only: no gradient buffers, so twice the rows
        per, z, _, host_sum = loss_only(p, p.rows or min(n_rows, 2 * chunk), labels)
        return SweepResult(per, z, (None, None, None), host_sum)
    if labels is not None and g is not None and block is not None:
        return by_vocabulary(p, g, Needs(*needs), labels, chunk, block)
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
