r"""Linear layer + cross-entropy without the :math:`N \times V` logits, forward and backward.

The semantics are those of :func:`torch.nn.functional.linear_cross_entropy`: for
``input`` :math:`a_{np}` of shape ``(N, H)`` (:math:`H` input features :math:`p`),
``linear_weight`` :math:`W_{jp}` of shape ``(V, H)`` (:math:`V` classes :math:`j`, a
vocabulary) and an optional ``linear_bias`` :math:`b_j`, the loss is
``cross_entropy(input @ linear_weight.T + linear_bias, target, ...)`` with the logits

.. math:: x_{nj} = \sum_p a_{np} W_{jp} + b_j .

The backward of :mod:`byhand.losses` gives the gradient at the logits,
:math:`G_{nj} = \partial L/\partial x_{nj} = g_n\big(s_{nj}\sum_k \tilde t_{nk} - \tilde t_{nj}\big)`,
with :math:`\tilde t_{nj}` the effective (weighted, masked, smoothed) target, and the
linear layer passes it on:

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

As in :mod:`byhand.losses`, nothing waits for the device: target values are checked
only on the CPU, and whether a row is ignored is a mask, never a branch on the host.
For ``float16`` and ``bfloat16`` the logits, losses and gradients are computed in
``float32`` (the gradients accumulated over the chunks in ``float32`` too) and each
result is rounded once to the input's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .cross_entropy_core import (
    CrossEntropyOptions,
    Reduction,
    denominator,
    effective_target,
    input_gradient,
    loss_dtype,
    no_target_grad,
    per_sample_loss,
    reduce,
    require_scalar_reduction,
    softmax_parts,
    upstream,
    validate,
)
from .errors import ArgumentTypeError, ArgumentValueError, UnsupportedDTypeError
from .softmax import logsumexp_update, online_logsumexp, opmath_dtype

__all__ = [
    "LinearCrossEntropy",
    "Needs",
    "default_chunk_size",
    "linear_cross_entropy",
    "linear_cross_entropy_backward",
    "linear_cross_entropy_forward_backward",
    "logsumexp_update",
    "online_logsumexp",
]

_FN = "linear_cross_entropy"
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


ALL_GRADIENTS = Needs()


# ----------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class _Request:
    """The loss's options and how the call splits its work: rows per chunk, classes per block."""

    options: CrossEntropyOptions
    rows: int | None
    vocab: int | None


def _check_linear(input: Tensor, linear_weight: Tensor, linear_bias: Tensor | None) -> None:
    """Shapes and dtypes of the linear layer's three tensors."""
    if not input.is_floating_point():
        raise UnsupportedDTypeError(
            f"{_FN}: input must be a floating-point tensor; got dtype {input.dtype}")
    if input.dim() not in (1, 2):
        raise ArgumentValueError(f"{_FN}: input must have shape (H,) or (N, H); "
                                 f"got shape {tuple(input.shape)}")
    if linear_weight.dim() != 2:
        raise ArgumentValueError(f"{_FN}: linear_weight must have shape (V, H); "
                                 f"got shape {tuple(linear_weight.shape)}")
    if linear_weight.shape[1] != input.shape[-1]:
        raise ArgumentValueError(
            f"{_FN}: linear_weight must have shape (V, {input.shape[-1]}) to match input's "
            f"last dimension H={input.shape[-1]}; got shape {tuple(linear_weight.shape)}"
        )
    for name, t in (("linear_weight", linear_weight), ("linear_bias", linear_bias)):
        if t is not None and t.dtype != input.dtype:
            raise ArgumentTypeError(f"{_FN}: {name} must have input's dtype {input.dtype}; "
                                    f"got {t.dtype}")
    n_classes = linear_weight.shape[0]
    if linear_bias is not None and tuple(linear_bias.shape) != (n_classes,):
        raise ArgumentValueError(f"{_FN}: linear_bias must have shape ({n_classes},); "
                                 f"got shape {tuple(linear_bias.shape)}")


def _check(input: Tensor, linear_weight: Tensor, target: Tensor, linear_bias: Tensor | None,
           request: _Request) -> Tensor:
    """Validate every argument; return the logits' stand-in.

    The stand-in has the logits' shape ``(N, V)`` (``(V,)`` unbatched) and the input's
    dtype but a single element of storage (all strides 0), so :func:`validate` runs
    on it without any logits being formed.
    """
    _check_linear(input, linear_weight, linear_bias)
    for name, size in (("chunk_size", request.rows), ("vocab_chunk_size", request.vocab)):
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"{_FN}: {name} must be a positive int or None; got {size!r}")
    like = input.new_empty(()).expand(*input.shape[:-1], linear_weight.shape[0])
    validate(_FN, like, target, request.options)
    return like


def _request(target: Tensor, logits_shape: tuple[int, ...], settings: dict[str, Any]) -> _Request:
    """The request of a call from its keyword ``settings`` (``weight``, ``reduction``, ...).

    ``ignore_index`` None means -100, and is the only value allowed for probabilities.
    """
    ignore_index = settings["ignore_index"]
    if target.shape == logits_shape and ignore_index is not None:
        raise ArgumentValueError(f"{_FN}: ignore_index cannot be given with class-probability "
                                 f"targets; got ignore_index={ignore_index}")
    options = CrossEntropyOptions(settings["weight"], -100 if ignore_index is None else ignore_index,
                                  settings["label_smoothing"], settings["reduction"])
    return _Request(options, settings["chunk_size"], settings["vocab_chunk_size"])


def default_chunk_size(n_rows: int, in_features: int) -> int:
    r"""Rows per chunk when ``chunk_size`` is None: :math:`H/2`, at least 32, at most :math:`N`.

    A chunk's logits, ``(chunk_size, V)``, are then at most half the size of the weight
    gradient ``(V, H)`` that the call returns anyway, whatever the vocabulary size.

    Examples:
        >>> default_chunk_size(4096, 512), default_chunk_size(4096, 16), default_chunk_size(10, 512)
        (256, 32, 10)
    """
    return max(1, min(n_rows, max(32, in_features // 2)))


def _spans(total: int, size: int) -> list[slice]:
    return [slice(lo, min(lo + size, total)) for lo in range(0, total, size)]


# --------------------------------------------------------------------- the chunked core


@dataclass(frozen=True)
class _Chunked:
    """A batched call in the working precision (float32 for half inputs), ready to chunk.

    ``loss_dtype`` is the dtype of the per-row losses: the working one, promoted with the
    target's and weight's for probabilities, as in :func:`byhand.losses.cross_entropy`.
    """

    a: Tensor
    w: Tensor
    b: Tensor | None
    t: Tensor
    loss_dtype: torch.dtype
    request: _Request

    @property
    def options(self) -> CrossEntropyOptions:
        """The loss's options."""
        return self.request.options


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


_RowsFn = Callable[[_Chunked, slice, "Tensor | None", Grads], Tensor]


def _rows_whole_vocab(p: _Chunked, rows: slice, g: Tensor | None, out: Grads) -> Tensor:
    """Loss (and gradients) of a chunk of rows, all classes at once, with the core's formulas."""
    a, t = p.a[rows], p.t[rows]
    x = _logits(a, p.w, p.b)
    shift, e, sums = softmax_parts(x)
    per = per_sample_loss(x, shift, sums.log(), t, p.options)
    del x, shift
    if g is not None:
        grad = input_gradient(e.div_(sums), g, t, p.options, overwrite=True)
        _pass_gradient(grad, a, p.w, rows, slice(0, p.w.shape[0]), out, first=True)
    return per


def _rows_online(p: _Chunked, rows: slice, g: Tensor | None, out: Grads) -> Tensor:
    r"""Loss (and gradients) of a chunk of rows, the classes in blocks (online log-sum-exp).

    With :math:`T_n = \sum_k \tilde t_{nk}`, the loss is :math:`L_n = T_n
    \operatorname{lse}_n - \sum_k \tilde t_{nk} x_{nk}` and the logits' gradient
    :math:`G_{nj} = g_n(s_{nj} T_n - \tilde t_{nj})`: one pass over the blocks for
    :math:`\operatorname{lse}_n`, :math:`T_n` and :math:`\sum_k \tilde t_{nk}(x_{nk} - \hat m_n)`
    (:math:`\hat m_n`, the first block's maximum, keeps the subtraction at the scale of the
    loss), a second pass for :math:`G`.
    """
    a, t = p.a[rows], p.t[rows]
    n_rows, n_classes = a.shape[0], p.w.shape[0]
    like = a.new_empty(()).expand(n_rows, n_classes)
    blocks = _spans(n_classes, p.request.vocab or n_classes)

    def block(cols: slice) -> tuple[Tensor, Tensor]:
        bias = None if p.b is None else p.b[cols]
        return (_logits(a, p.w[cols], bias),
                effective_target(t, p.options, like, cols, n_classes))

    m = a.new_full((n_rows, 1), -math.inf)
    r = a.new_zeros(n_rows, 1)
    tx = a.new_zeros(n_rows, dtype=p.loss_dtype)
    total = a.new_zeros(n_rows, dtype=p.loss_dtype)
    ref = m  # the first block's maximum, once it is known
    for i, cols in enumerate(blocks):
        x, q = block(cols)
        m, r = logsumexp_update(m, r, x)
        ref = m if i == 0 else ref
        tx += (q * (x - ref)).sum(1)
        total += q.sum(1)
    lse = m + r.log()
    per = total * (lse - ref).squeeze(1) - tx
    if g is not None:
        scale = total.to(a.dtype).unsqueeze(1)
        for i, cols in enumerate(blocks):
            x, q = block(cols)
            grad = x.sub_(lse).exp_().mul_(scale).sub_(q).mul_(g.unsqueeze(1))
            _pass_gradient(grad, a, p.w[cols], rows, cols, out, first=i == 0)
    return per


def _run(p: _Chunked, g: Tensor | None, needs: Needs) -> tuple[Tensor, Grads]:
    """Per-row losses (dtype ``p.loss_dtype``) and, when ``g`` (one per row) is given, the
    gradients, in the working precision."""
    n_rows, n_classes = p.a.shape[0], p.w.shape[0]
    chunk = p.request.rows or default_chunk_size(n_rows, p.a.shape[1])
    vocab = p.request.vocab
    rows_fn: _RowsFn = (_rows_online if vocab is not None and vocab < n_classes
                        else _rows_whole_vocab)
    wanted = Needs(*needs) if g is not None else Needs(False, False, False)
    out: Grads = (
        p.a.new_empty(p.a.shape) if wanted.input else None,
        torch.zeros_like(p.w) if wanted.linear_weight else None,
        torch.zeros_like(p.b) if p.b is not None and wanted.linear_bias else None,
    )
    per = p.a.new_empty(n_rows, dtype=p.loss_dtype)
    for rows in _spans(n_rows, chunk):
        per[rows] = rows_fn(p, rows, None if g is None else g[rows], out)
    return per, out


def _prepare(input: Tensor, linear_weight: Tensor, linear_bias: Tensor | None, target: Tensor,
             settings: dict[str, Any]) -> tuple[_Chunked, Tensor]:
    """Check the arguments; return the batched call in the working precision and the
    batched logits' stand-in (in the input's dtype)."""
    request = _request(target, (*input.shape[:-1], linear_weight.shape[0]), settings)
    like = _check(input, linear_weight, target, linear_bias, request)
    work = opmath_dtype(input.dtype)
    dtype = torch.promote_types(work, loss_dtype(like, target, request.options.weight))
    a, t = input.to(work), target
    if input.dim() == 1:
        a, t, like = a.unsqueeze(0), t.unsqueeze(0), like.unsqueeze(0)
    b = None if linear_bias is None else linear_bias.to(work)
    return _Chunked(a, linear_weight.to(work), b, t, dtype, request), like


def _finish(grads: Grads, dtype: torch.dtype, unbatched: bool,
            grad_output: Tensor | None = None) -> Grads:
    """Scale working-precision gradients by ``grad_output`` (if given), round them once
    to ``dtype``, and drop the batch dimension of an unbatched input's gradient."""

    def one(d: Tensor | None) -> Tensor | None:
        if d is None:
            return None
        if grad_output is not None:
            d = d.mul_(grad_output.to(d.dtype))
        return d.to(dtype)

    d_input, d_weight, d_bias = (one(d) for d in grads)
    if unbatched and d_input is not None:
        d_input = d_input.squeeze(0)
    return d_input, d_weight, d_bias


def _loss(per: Tensor, p: _Chunked, like: Tensor) -> Tensor:
    """Round the per-row losses once to the loss's dtype and reduce them."""
    per = per.to(loss_dtype(like, p.t, p.options.weight))
    return reduce(per, p.options.reduction, denominator(like, p.t, p.options))


def _scalar_loss_and_grads(p: _Chunked, like: Tensor, needs: Needs) -> tuple[Tensor, Grads]:
    """``mean`` or ``sum`` loss and its working-precision gradients for
    ``grad_output = 1``, in one sweep."""
    one = torch.ones((), dtype=like.dtype, device=like.device)
    g = upstream(one, p.options.reduction, denominator(like, p.t, p.options), like.select(1, 0))
    per, grads = _run(p, g.to(p.a.dtype).contiguous(), needs)
    return _loss(per, p, like), grads


# ------------------------------------------------------------------------- public API


def linear_cross_entropy_forward_backward(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: Literal["mean", "sum"] = "mean",
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

    Examples:
        >>> a, W = torch.tensor([[1.0, -0.5], [0.2, 0.3], [-1.0, 2.0]]), torch.eye(3, 2)
        >>> y = torch.tensor([0, 1, 2])
        >>> loss, (d_a, d_W, d_b) = linear_cross_entropy_forward_backward(a, W, y, chunk_size=2)
        >>> loss
        tensor(1.2024)
        >>> torch.allclose(loss, torch.nn.functional.linear_cross_entropy(a, W, y)), d_b
        (True, None)
        >>> d_W
        tensor([[-0.1150,  0.1241],
                [-0.2760,  0.4770],
                [ 0.3910, -0.6011]])
    """
    require_scalar_reduction(f"{_FN}_forward_backward", reduction)
    settings = {"weight": weight, "reduction": reduction, "ignore_index": ignore_index,
                "label_smoothing": label_smoothing, "chunk_size": chunk_size,
                "vocab_chunk_size": vocab_chunk_size}
    p, like = _prepare(input, linear_weight, linear_bias, target, settings)
    loss, grads = _scalar_loss_and_grads(p, like, ALL_GRADIENTS)
    return loss, _finish(grads, input.dtype, input.dim() == 1)


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
    needs: Needs = ALL_GRADIENTS,
) -> Grads:
    r"""Gradients of :func:`linear_cross_entropy` for ``input``, ``linear_weight``, ``linear_bias``.

    .. math::

       \frac{\partial L}{\partial a_{np}} = \sum_j G_{nj} W_{jp}, \quad
       \frac{\partial L}{\partial W_{jp}} = \sum_n G_{nj} a_{np}, \quad
       \frac{\partial L}{\partial b_j} = \sum_n G_{nj},

    with :math:`G_{nj} = g_n(s_{nj}\sum_k \tilde t_{nk} - \tilde t_{nj})` formed one chunk
    of rows at a time; :math:`g_n` is ``grad_output`` (per row for ``none``, divided by
    the ``mean`` denominator for ``mean``). ``needs`` (a :class:`Needs`) skips the products
    of gradients not wanted; a skipped gradient, and the bias gradient without a bias, is None.

    Examples:
        >>> a = torch.tensor([[1.0, -0.5], [0.2, 0.3], [-1.0, 2.0]], requires_grad=True)
        >>> W, y = torch.eye(3, 2), torch.tensor([0, 1, 2])
        >>> torch.nn.functional.linear_cross_entropy(a, W, y, reduction="sum").backward()
        >>> d_a, d_W, d_b = linear_cross_entropy_backward(
        ...     torch.tensor(1.0), a.detach(), W, y, reduction="sum",
        ...     needs=Needs(linear_weight=False, linear_bias=False))
        >>> d_a
        tensor([[-0.3715,  0.1402],
                [ 0.3420, -0.6220],
                [ 0.0420,  0.8438]])
        >>> torch.allclose(d_a, a.grad), d_W, d_b
        (True, None, None)
    """
    settings = {"weight": weight, "reduction": reduction, "ignore_index": ignore_index,
                "label_smoothing": label_smoothing, "chunk_size": chunk_size,
                "vocab_chunk_size": vocab_chunk_size}
    p, like = _prepare(input, linear_weight, linear_bias, target, settings)
    if reduction == "none":
        g = grad_output.to(input.dtype).reshape(p.a.shape[0]).to(p.a.dtype).contiguous()
        return _finish(_run(p, g, needs)[1], input.dtype, input.dim() == 1)
    _, grads = _scalar_loss_and_grads(p, like, needs)
    return _finish(grads, input.dtype, input.dim() == 1, grad_output)


class LinearCrossEntropy(torch.autograd.Function):
    """``F.linear_cross_entropy`` whose forward and backward run chunk by chunk.

    For ``mean`` and ``sum`` the gradients (for ``grad_output = 1``) are computed in
    the forward's sweep, while each chunk's logits exist anyway, and kept in the working
    precision; the backward only scales them and rounds them to the input's dtype. A
    second backward of the same graph recomputes them. For ``none`` the backward
    recomputes each chunk's logits, since it needs one ``grad_output`` per row.

    Examples:
        >>> a = torch.tensor([[1.0, -0.5], [0.2, 0.3]], requires_grad=True)
        >>> W, y = torch.eye(3, 2), torch.tensor([0, 2])
        >>> options = {"reduction": "mean", "ignore_index": None, "label_smoothing": 0.0,
        ...            "chunk_size": 1, "vocab_chunk_size": None}
        >>> loss = LinearCrossEntropy.apply(a, W, None, y, None, options)
        >>> loss.backward()
        >>> loss, a.grad
        (tensor(0.8686, grad_fn=<LinearCrossEntropyBackward>), tensor([[-0.1857,  0.0701],
                [ 0.1710,  0.1890]]))
    """

    @staticmethod
    def forward(
        ctx: Any, input: Tensor, linear_weight: Tensor, linear_bias: Tensor | None,
        target: Tensor, weight: Tensor | None, options: dict[str, Any],
    ) -> Tensor:
        needs = Needs(*ctx.needs_input_grad[:3])
        ctx.save_for_backward(input, linear_weight, linear_bias, target, weight)
        ctx.options, ctx.grads = options, None
        p, like = _prepare(input, linear_weight, linear_bias, target, {**options, "weight": weight})
        if options["reduction"] == "none" or not any(needs):
            per, _ = _run(p, None, needs)
            if options["reduction"] == "none":
                per = per.to(loss_dtype(like, target, weight))
                return per.squeeze(0) if input.dim() == 1 else per
            return _loss(per, p, like)
        loss, ctx.grads = _scalar_loss_and_grads(p, like, needs)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        input, linear_weight, linear_bias, target, weight = ctx.saved_tensors
        grads, ctx.grads = ctx.grads, None
        if grads is not None:
            grads = _finish(grads, input.dtype, input.dim() == 1, grad_output)
        else:
            grads = linear_cross_entropy_backward(
                grad_output, input, linear_weight, target, linear_bias=linear_bias,
                weight=weight, needs=Needs(*ctx.needs_input_grad[:3]), **ctx.options)
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

    Examples:
        >>> a = torch.tensor([[1.0, -0.5], [0.2, 0.3], [-1.0, 2.0]], requires_grad=True)
        >>> W, y = torch.eye(3, 2), torch.tensor([0, 1, 2])
        >>> loss = linear_cross_entropy(a, W, y, chunk_size=2, vocab_chunk_size=2)
        >>> loss.backward()
        >>> loss
        tensor(1.2024, grad_fn=<LinearCrossEntropyBackward>)
        >>> ref = torch.nn.functional.cross_entropy(a.detach() @ W.T, y)
        >>> torch.allclose(loss, ref)
        True
        >>> linear_cross_entropy(a, W, torch.tensor([0, 1]))
        Traceback (most recent call last):
            ...
        ValueError: linear_cross_entropy: target batch size must match input batch size 3; got 2
    """
    no_target_grad(_FN, target, weight)
    options = {"reduction": reduction, "ignore_index": ignore_index,
               "label_smoothing": label_smoothing, "chunk_size": chunk_size,
               "vocab_chunk_size": vocab_chunk_size}
    loss: Tensor = LinearCrossEntropy.apply(  # type: ignore[no-untyped-call]  # unannotated in torch
        input, linear_weight, linear_bias, target, weight, options)
    return loss
