r"""Linear layer + cross-entropy without the :math:`N \times V` logits, forward and backward.

The semantics are those of :func:`torch.nn.functional.linear_cross_entropy`: for
``input`` :math:`a_{np}` of shape ``(N, H)``, ``linear_weight`` :math:`W_{jp}` of shape
``(V, H)`` and an optional ``linear_bias`` :math:`b_j`, the loss is
``cross_entropy(input @ linear_weight.T + linear_bias, target, ...)`` with the logits

.. math:: x_{nj} = \sum_p a_{np} W_{jp} + b_j .

The backward of :mod:`byhand.losses` gives the gradient at the logits,
:math:`G_{nj} = \partial L/\partial x_{nj} = g_n\big(s_{nj}\sum_c q_{nc} - q_{nj}\big)`,
and the linear layer passes it on:

.. math::

   \frac{\partial L}{\partial a_{np}} = \sum_j G_{nj} W_{jp}, \qquad
   \frac{\partial L}{\partial W_{jp}} = \sum_n G_{nj} a_{np}, \qquad
   \frac{\partial L}{\partial b_j} = \sum_n G_{nj}.

Row :math:`n` of :math:`G` needs only row :math:`n` of the logits, and each product
above is a sum over rows (for :math:`W` and :math:`b`) or acts row by row (for
:math:`a`). So the rows are processed in chunks: a chunk's logits are formed, turned
into its rows of :math:`G` in place, multiplied into the three gradients and dropped.
At no time does a tensor of :math:`N \times V` numbers exist; the largest is one
chunk's ``(chunk_size, V)`` logits. For very large vocabularies the columns can be
chunked too (``vocab_chunk_size``): the log-sum-exp of a row is then accumulated block
by block with the online rule of :func:`logsumexp_update`, and each block of logits is
computed twice, once for the log-sum-exp and once for the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .autograd import _no_target_grad
from .losses import (
    Reduction,
    _ce_denominator,
    _ce_grad_from_softmax,
    _ce_per_sample,
    _check_cross_entropy,
    _plain_grad_from_softmax,
    _prob_weights,
    _reduce,
    _softmax_parts,
    _target_indices,
    _target_weight,
    _upstream,
)

__all__ = [
    "LinearCrossEntropy",
    "default_chunk_size",
    "linear_cross_entropy",
    "linear_cross_entropy_backward",
    "linear_cross_entropy_forward_backward",
    "logsumexp_update",
    "online_logsumexp",
]

_FN = "linear_cross_entropy"
Grads = tuple[Tensor | None, Tensor | None, Tensor | None]


# ------------------------------------------------------------------ online logsumexp


def logsumexp_update(m: Tensor, r: Tensor, block: Tensor) -> tuple[Tensor, Tensor]:
    r"""Fold one block of a row into a running log-sum-exp, kept as :math:`(m, r)`.

    The state means :math:`\operatorname{lse} = m + \log r` for the entries seen so
    far, with :math:`m` their maximum and :math:`r = \sum_k e^{x_k - m}`. For a new
    block :math:`B` along the last dimension,

    .. math::

       m' = \max\big(m, \max_{k \in B} x_k\big), \qquad
       r' = r\, e^{m - m'} + \sum_{k \in B} e^{x_k - m'} .

    Start from :math:`m = -\infty`, :math:`r = 0` (shape ``block.shape[:-1] + (1,)``).
    Every exponent is :math:`\le 0`, so nothing overflows (Milakov & Gimelshein, 2018).
    """
    m_new = torch.maximum(m, block.amax(-1, keepdim=True))
    safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
    r_new = r * (m - safe).exp() + (block - safe).exp().sum(-1, keepdim=True)
    return m_new, r_new


def online_logsumexp(blocks: Iterable[Tensor]) -> Tensor:
    r""":math:`\log\sum_k e^{x_k}` along the last dimension, one block of columns at a time."""
    m = r = None
    for block in blocks:
        if m is None:
            m = torch.full((*block.shape[:-1], 1), -math.inf, dtype=block.dtype,
                           device=block.device)
            r = torch.zeros_like(m)
        m, r = logsumexp_update(m, r, block)
    if m is None:
        raise ValueError("online_logsumexp: blocks must hold at least one block; got none")
    return (m + r.log()).squeeze(-1)


# ----------------------------------------------------------------------------- checks


def _check(
    input: Tensor, linear_weight: Tensor, target: Tensor, linear_bias: Tensor | None,
    weight: Tensor | None, reduction: str, ignore_index: int | None, label_smoothing: float,
    chunk_size: int | None, vocab_chunk_size: int | None,
) -> tuple[Tensor, int, bool, bool]:
    """Validate every argument; return the logits' stand-in, ``ignore_index``, prob, plain.

    The stand-in has the logits' shape ``(N, V)`` (``(V,)`` unbatched) but a single
    element of storage (all strides 0), so the checks of :mod:`byhand.losses` run on
    it without any logits being formed.
    """
    if not input.is_floating_point():
        raise TypeError(f"{_FN}: input must be a floating-point tensor; got dtype {input.dtype}")
    if input.dim() not in (1, 2):
        raise ValueError(f"{_FN}: input must have shape (H,) or (N, H); "
                         f"got shape {tuple(input.shape)}")
    if linear_weight.dim() != 2:
        raise ValueError(f"{_FN}: linear_weight must have shape (V, H); "
                         f"got shape {tuple(linear_weight.shape)}")
    if linear_weight.shape[1] != input.shape[-1]:
        raise ValueError(
            f"{_FN}: linear_weight must have shape (V, {input.shape[-1]}) to match input's "
            f"last dimension H={input.shape[-1]}; got shape {tuple(linear_weight.shape)}"
        )
    for name, t in (("linear_weight", linear_weight), ("linear_bias", linear_bias)):
        if t is not None and t.dtype != input.dtype:
            raise TypeError(f"{_FN}: {name} must have input's dtype {input.dtype}; "
                            f"got {t.dtype}")
    n_classes = linear_weight.shape[0]
    if linear_bias is not None and tuple(linear_bias.shape) != (n_classes,):
        raise ValueError(f"{_FN}: linear_bias must have shape ({n_classes},); "
                         f"got shape {tuple(linear_bias.shape)}")
    for name, size in (("chunk_size", chunk_size), ("vocab_chunk_size", vocab_chunk_size)):
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"{_FN}: {name} must be a positive int or None; got {size!r}")
    like = input.new_empty(()).expand(*input.shape[:-1], n_classes)
    prob = like.shape == target.shape
    if prob and ignore_index is not None:
        raise ValueError(f"{_FN}: ignore_index cannot be given with class-probability "
                         f"targets; got ignore_index={ignore_index}")
    ignore_index = -100 if ignore_index is None else ignore_index
    prob, plain = _check_cross_entropy(like, target, weight, ignore_index, reduction,
                                       label_smoothing, fn=_FN)
    return like, ignore_index, prob, plain


def default_chunk_size(n_rows: int, in_features: int) -> int:
    r"""Rows per chunk when ``chunk_size`` is None: :math:`H/2`, at least 32, at most :math:`N`.

    A chunk's logits, ``(chunk_size, V)``, are then at most half the size of the weight
    gradient ``(V, H)`` that the call returns anyway, whatever the vocabulary size.
    """
    return max(1, min(n_rows, max(32, in_features // 2)))


def _spans(total: int, size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + size, total)) for lo in range(0, total, size)]


# --------------------------------------------------------------------- the chunked core


def _logits(a: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    r""":math:`x_{nj} = \sum_p a_{np} W_{jp} + b_j` for a block of rows and columns."""
    return a @ w.t() if b is None else torch.addmm(b, a, w.t())


def _pass_gradient(grad: Tensor, a: Tensor, w: Tensor, rows: slice, cols: slice,
                   out: Grads, first: bool) -> None:
    r"""Add one block :math:`G` of the logits' gradient into the three gradients.

    :math:`\partial a_{np} \mathrel{+}= \sum_j G_{nj} W_{jp}`,
    :math:`\partial W_{jp} \mathrel{+}= \sum_n G_{nj} a_{np}`,
    :math:`\partial b_j \mathrel{+}= \sum_n G_{nj}`.
    """
    d_input, d_weight, d_bias = out
    if d_input is not None:
        if first:
            torch.mm(grad, w, out=d_input[rows])
        else:
            d_input[rows].addmm_(grad, w)
    if d_weight is not None:
        d_weight[cols].addmm_(grad.t(), a)
    if d_bias is not None:
        d_bias[cols] += grad.sum(0)


def _target_block(
    t: Tensor, index: tuple[Tensor, Tensor, Tensor] | None, weight: Tensor | None,
    eps: float, cols: slice, n_classes: int, like: Tensor,
) -> Tensor:
    r"""Columns ``cols`` of the weighted, smoothed target :math:`q_{nc}`.

    Class indices: :math:`q_{nc} = m_n\big[(1-\varepsilon) w_{y_n}\delta_{c y_n}
    + \tfrac{\varepsilon}{C} w_c\big]`, given ``index`` = :math:`(y_n, m_n, m_n w_{y_n})`;
    probabilities (``index`` None): :math:`q_{nc} = w_c t'_{nc}`.
    """
    w = None if weight is None else weight[cols]
    if index is None:
        return _prob_weights(t[:, cols], w, eps, like, n_classes)
    y, keep, wy = index
    width = cols.stop - cols.start
    q = like.new_zeros(like.shape[0], width)
    if eps > 0:
        q += (eps / n_classes) * keep.to(like.dtype).unsqueeze(1) * (
            1.0 if w is None else w.to(like.dtype))
    inside = keep & (y >= cols.start) & (y < cols.stop)
    index = torch.where(inside, y - cols.start, torch.zeros_like(y)).unsqueeze(1)
    return q.scatter_add_(1, index, torch.where(inside, (1 - eps) * wy, 0.0).unsqueeze(1))


def _rows_whole_vocab(
    a: Tensor, w: Tensor, b: Tensor | None, t: Tensor, g: Tensor | None, rows: slice,
    out: Grads, opts: dict[str, Any],
) -> Tensor:
    """Loss (and gradients) of a chunk of rows, all classes at once, with byhand.losses."""
    x = _logits(a, w, b)
    shift, e, sums = _softmax_parts(x)
    per, _ = _ce_per_sample(x, shift, sums.log(), t, opts["weight"], opts["ignore_index"],
                            opts["label_smoothing"], opts["prob"])
    del x, shift
    if g is not None:
        s = e.div_(sums)
        if opts["plain"]:
            grad = _plain_grad_from_softmax(s, g, t)
        else:
            grad = _ce_grad_from_softmax(s, g, t, opts["weight"], opts["ignore_index"],
                                         opts["label_smoothing"], opts["prob"], True)
        _pass_gradient(grad, a, w, rows, slice(0, w.shape[0]), out, first=True)
    return per


def _rows_online(
    a: Tensor, w: Tensor, b: Tensor | None, t: Tensor, g: Tensor | None, rows: slice,
    out: Grads, opts: dict[str, Any],
) -> Tensor:
    r"""Loss (and gradients) of a chunk of rows, the classes in blocks (online log-sum-exp).

    With :math:`Q_n = \sum_c q_{nc}`, the loss is :math:`L_n = Q_n \operatorname{lse}_n
    - \sum_c q_{nc} x_{nc}` and the logits' gradient :math:`G_{nj} = g_n(s_{nj} Q_n -
    q_{nj})`: one pass over the blocks for :math:`\operatorname{lse}_n`, :math:`Q_n` and
    :math:`\sum_c q_{nc}(x_{nc} - r_n)` (:math:`r_n`, the first block's maximum, keeps
    the subtraction at the scale of the loss), a second pass for :math:`G`.
    """
    n_classes, eps, weight = w.shape[0], opts["label_smoothing"], opts["weight"]
    like = a.new_empty(()).expand(a.shape[0], n_classes)
    index = None
    if not opts["prob"]:
        y, keep = _target_indices(t, opts["ignore_index"])
        index = (y, keep, _target_weight(y, keep, weight, a.dtype))
    blocks = [slice(lo, hi) for lo, hi in _spans(n_classes, opts["vocab_chunk_size"])]

    def block(cols: slice) -> tuple[Tensor, Tensor]:
        bias = None if b is None else b[cols]
        q = _target_block(t, index, weight, eps, cols, n_classes, like)
        return _logits(a, w[cols], bias), q

    m = a.new_full((a.shape[0], 1), -math.inf)
    r = a.new_zeros(a.shape[0], 1)
    qx = a.new_zeros(a.shape[0])
    total_q = a.new_zeros(a.shape[0])
    ref = None
    for cols in blocks:
        x, q = block(cols)
        m, r = logsumexp_update(m, r, x)
        ref = m.clone() if ref is None else ref
        qx += (q * (x - ref)).sum(1)
        total_q += q.sum(1)
    lse = m + r.log()
    per = total_q * (lse - ref).squeeze(1) - qx
    if g is not None:
        for i, cols in enumerate(blocks):
            x, q = block(cols)
            grad = x.sub_(lse).exp_().mul_(total_q.unsqueeze(1)).sub_(q).mul_(g.unsqueeze(1))
            _pass_gradient(grad, a, w[cols], rows, cols, out, first=i == 0)
    return per


def _run(
    a: Tensor, w: Tensor, b: Tensor | None, t: Tensor, g: Tensor | None, need: tuple[bool, ...],
    opts: dict[str, Any],
) -> tuple[Tensor, Grads]:
    """Per-row losses of a batched problem and, when ``g`` (one per row) is given, the gradients."""
    n_rows, n_classes = a.shape[0], w.shape[0]
    chunk = opts["chunk_size"] or default_chunk_size(n_rows, a.shape[1])
    online = opts["vocab_chunk_size"] is not None and opts["vocab_chunk_size"] < n_classes
    rows_fn = _rows_online if online else _rows_whole_vocab
    with_grad = g is not None
    out: Grads = (
        a.new_empty(a.shape) if with_grad and need[0] else None,
        torch.zeros_like(w) if with_grad and need[1] else None,
        torch.zeros_like(b) if with_grad and b is not None and need[2] else None,
    )
    per = a.new_empty(n_rows)
    for lo, hi in _spans(n_rows, chunk):
        rows = slice(lo, hi)
        per[rows] = rows_fn(a[rows], w, b, t[rows], None if g is None else g[rows], rows, out,
                            opts)
    return per, out


def _prepare(
    input: Tensor, linear_weight: Tensor, target: Tensor, linear_bias: Tensor | None,
    weight: Tensor | None, reduction: str, ignore_index: int | None, label_smoothing: float,
    chunk_size: int | None, vocab_chunk_size: int | None,
) -> tuple[Tensor, Tensor, Tensor, dict[str, Any]]:
    """Check the arguments; return the batched input, target, logits stand-in and options."""
    like, ignore, prob, plain = _check(input, linear_weight, target, linear_bias, weight,
                                       reduction, ignore_index, label_smoothing, chunk_size,
                                       vocab_chunk_size)
    opts = {"weight": weight, "ignore_index": ignore, "label_smoothing": label_smoothing,
            "prob": prob, "plain": plain, "reduction": reduction, "chunk_size": chunk_size,
            "vocab_chunk_size": vocab_chunk_size}
    if input.dim() == 1:
        return input.unsqueeze(0), target.unsqueeze(0), like.unsqueeze(0), opts
    return input, target, like, opts


def _unbatch_grads(grads: Grads, unbatched: bool) -> Grads:
    d_input, d_weight, d_bias = grads
    if unbatched and d_input is not None:
        d_input = d_input.squeeze(0)
    return d_input, d_weight, d_bias


def _scalar_loss_and_grads(
    a: Tensor, w: Tensor, b: Tensor | None, t: Tensor, like: Tensor, need: tuple[bool, ...],
    opts: dict[str, Any],
) -> tuple[Tensor, Grads]:
    """``mean`` or ``sum`` loss and its gradients for ``grad_output = 1``, in one sweep."""
    denominator = _ce_denominator(like, t, opts["weight"], opts["ignore_index"], opts["prob"])
    one = torch.ones((), dtype=a.dtype, device=a.device)
    g = _upstream(one, opts["reduction"], denominator, like.select(1, 0)).contiguous()
    per, grads = _run(a, w, b, t, g, need, opts)
    return _reduce(per, opts["reduction"], denominator), grads


# ------------------------------------------------------------------------- public API


def linear_cross_entropy_forward_backward(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
    vocab_chunk_size: int | None = None,
) -> tuple[Tensor, Grads]:
    r"""The scalar loss and the gradients of ``input``, ``linear_weight`` and ``linear_bias``.

    One sweep over the chunks, for ``grad_output = 1`` (``mean`` or ``sum``): each
    chunk's logits give its losses and, at once, its rows of
    :math:`G_{nj} = \partial L/\partial x_{nj}`, which are multiplied into
    :math:`\sum_j G_{nj} W_{jp}`, :math:`\sum_n G_{nj} a_{np}` and
    :math:`\sum_n G_{nj}` before the next chunk. The bias gradient is None without a bias.
    """
    if reduction == "none":
        raise ValueError(f"{_FN}_forward_backward: reduction must be 'mean' or 'sum' "
                         "(a scalar loss); got 'none'")
    a, t, like, opts = _prepare(input, linear_weight, target, linear_bias, weight, reduction,
                                ignore_index, label_smoothing, chunk_size, vocab_chunk_size)
    loss, grads = _scalar_loss_and_grads(a, linear_weight, linear_bias, t, like,
                                         (True, True, True), opts)
    return loss, _unbatch_grads(grads, input.dim() == 1)


def linear_cross_entropy_backward(
    grad_output: Tensor,
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
    vocab_chunk_size: int | None = None,
    needs: tuple[bool, bool, bool] = (True, True, True),
) -> Grads:
    r"""Gradients of :func:`linear_cross_entropy` for ``input``, ``linear_weight``, ``linear_bias``.

    .. math::

       \frac{\partial L}{\partial a_{np}} = \sum_j G_{nj} W_{jp}, \quad
       \frac{\partial L}{\partial W_{jp}} = \sum_n G_{nj} a_{np}, \quad
       \frac{\partial L}{\partial b_j} = \sum_n G_{nj},

    with :math:`G_{nj} = g_n(s_{nj}\sum_c q_{nc} - q_{nj})` formed one chunk of rows at
    a time; :math:`g_n` is ``grad_output`` (per row for ``none``, divided by the
    ``mean`` denominator for ``mean``). ``needs`` skips the products of gradients not
    wanted; a skipped gradient, and the bias gradient without a bias, is None.
    """
    a, t, like, opts = _prepare(input, linear_weight, target, linear_bias, weight, reduction,
                                ignore_index, label_smoothing, chunk_size, vocab_chunk_size)
    if reduction == "none":
        g = grad_output.to(a.dtype).reshape(a.shape[0]).contiguous()
        _, grads = _run(a, linear_weight, linear_bias, t, g, needs, opts)
    else:
        _, grads = _scalar_loss_and_grads(a, linear_weight, linear_bias, t, like, needs, opts)
        grads = _scaled(grads, grad_output)
    return _unbatch_grads(grads, input.dim() == 1)


def _scaled(grads: Grads, grad_output: Tensor) -> Grads:
    """Multiply gradients computed for ``grad_output = 1`` by the real one, in place."""
    d_input, d_weight, d_bias = (None if d is None else d.mul_(grad_output.to(d.dtype))
                                 for d in grads)
    return d_input, d_weight, d_bias


class LinearCrossEntropy(torch.autograd.Function):
    """``F.linear_cross_entropy`` whose forward and backward run chunk by chunk.

    For ``mean`` and ``sum`` the gradients (for ``grad_output = 1``) are computed in
    the forward's sweep, while each chunk's logits exist anyway, and the backward only
    scales them; a second backward of the same graph recomputes them. For ``none`` the
    backward recomputes each chunk's logits, since it needs one ``grad_output`` per row.
    """

    @staticmethod
    def forward(
        ctx: Any, input: Tensor, linear_weight: Tensor, linear_bias: Tensor | None,
        target: Tensor, weight: Tensor | None, options: dict[str, Any],
    ) -> Tensor:
        needs = tuple(ctx.needs_input_grad[:3])
        ctx.save_for_backward(input, linear_weight, linear_bias, target, weight)
        ctx.options, ctx.grads = options, None
        a, t, like, opts = _prepare(input, linear_weight, target, linear_bias, weight,
                                    **options)
        if options["reduction"] == "none" or not any(needs):
            per, _ = _run(a, linear_weight, linear_bias, t, None, needs, opts)
            if options["reduction"] == "none":
                return per.squeeze(0) if input.dim() == 1 else per
            denominator = _ce_denominator(like, t, weight, opts["ignore_index"], opts["prob"])
            return _reduce(per, options["reduction"], denominator)
        loss, grads = _scalar_loss_and_grads(a, linear_weight, linear_bias, t, like, needs,
                                             opts)
        ctx.grads = _unbatch_grads(grads, input.dim() == 1)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        input, linear_weight, linear_bias, target, weight = ctx.saved_tensors
        needs = tuple(ctx.needs_input_grad[:3])
        grads, ctx.grads = ctx.grads, None
        if grads is not None:
            grads = _scaled(grads, grad_output)
        else:
            grads = linear_cross_entropy_backward(
                grad_output, input, linear_weight, target, linear_bias=linear_bias,
                weight=weight, needs=needs, **ctx.options)
        return (*grads, None, None, None)


def linear_cross_entropy(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
    vocab_chunk_size: int | None = None,
) -> Tensor:
    r"""Drop-in for :func:`torch.nn.functional.linear_cross_entropy`, chunked, backward by hand.

    Equal to ``cross_entropy(input @ linear_weight.T + linear_bias, target, ...)``
    with every option of :func:`byhand.cross_entropy`, but no tensor of ``N x V``
    logits is ever formed: rows go ``chunk_size`` at a time (default
    :func:`default_chunk_size`), and with ``vocab_chunk_size`` the classes too.
    ``ignore_index`` defaults to None, which means -100 for class indices and is the
    only value allowed with class-probability targets, as in PyTorch.
    """
    _no_target_grad(_FN, target, weight)
    options = {"reduction": reduction, "ignore_index": ignore_index,
               "label_smoothing": label_smoothing, "chunk_size": chunk_size,
               "vocab_chunk_size": vocab_chunk_size}
    return LinearCrossEntropy.apply(input, linear_weight, linear_bias, target, weight, options)
