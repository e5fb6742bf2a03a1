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

   \begin{aligned}
   \frac{\partial L}{\partial a_{np}} &= \sum_j G_{nj} W_{jp}, \\
   \frac{\partial L}{\partial W_{jp}} &= \sum_n G_{nj} a_{np}, \\
   \frac{\partial L}{\partial b_j} &= \sum_n G_{nj}.
   \end{aligned}

Row :math:`n` of :math:`G` needs only row :math:`n` of the logits, and each product
above is a sum over rows (for :math:`W` and :math:`b`) or acts row by row (for
:math:`a`). So the rows are processed in chunks: a chunk's logits are formed, turned
into its rows of :math:`G` in place, multiplied into the three gradients and dropped.
At no time does a tensor of :math:`N \times V` numbers exist; the largest is one
chunk's ``(chunk_size, V)`` logits. For very large vocabularies the columns can be
chunked too (``vocab_chunk_size``): the log-sum-exp of a row is then accumulated block
by block with the online rule of :func:`logsumexp_update`, and each block of logits is
computed twice, once for the log-sum-exp and once for the gradient.

The sweep itself lives in :mod:`byhand.chunked_sweep` (and :mod:`byhand.class_blocks`,
its orders with every row at once); this module checks the arguments, reads PyTorch's
``options=`` (:class:`torch.nn.LinearCrossEntropyOptions`), unfolds a K-dimensional
``linear_weight``, follows :func:`torch.autocast`, and wraps the sweep in an autograd
function. As in :mod:`byhand.losses`, nothing waits for the
device: target values are checked only on the CPU, and whether a row is ignored is a
mask, never a branch on the host. In ``bfloat16`` and ``float16`` the matmuls run in the
input's dtype and the log-sum-exp, the losses and the weight gradient's sum over chunks
in ``float32`` (see :mod:`byhand.chunked_sweep`); every result is rounded once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal, overload

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .chunked_sweep import chunk_gradient, sweep
from .cross_entropy_checks import (
    no_target_grad,
    require_scalar_reduction,
    validate,
)
from .cross_entropy_core import (
    Reduction,
    denominator,
    loss_dtype,
    softmax_parts,
    total,
    upstream,
)
from .errors import ArgumentValueError
from .linear_ce_arguments import (
    LinearCEInputs,
    LinearCESettings,
    autocast_arguments,
    autocasting,
    check_linear,
    has_tangent,
    logits_dtype,
    options_from,
    prepare,
)
from .softmax import logsumexp_update, online_logsumexp
from .sweep_problem import Grads, Needs, Sweep, default_chunk_size, stand_in
from .sweep_problem import logits as chunk_logits

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
ALL_GRADIENTS = Needs()


def _result_dtype(p: Sweep, settings: LinearCESettings) -> torch.dtype:
    """The loss's dtype: PyTorch's for these inputs, or float32 under autocast."""
    given = settings.result_dtype
    if given is not None:
        return torch.promote_types(given, p.loss_dtype) if p.t.is_floating_point() else given
    return loss_dtype(p.a, p.t, p.options.weight)


def _denominator(p: Sweep) -> Tensor | float:
    """The ``mean`` denominator of the sweep ``p``, in its working dtype: the number of
    rows when each counts once (:attr:`~byhand.sweep_problem.Sweep.plain_count`)."""
    if p.plain_count and p.options.denominator is None:
        return float(p.a.shape[0])
    return denominator(p.logits_like(), p.t, p.options, every_kept=p.every_kept)


def _reduce(per: Tensor, p: Sweep, dtype: torch.dtype, host_sum: float | None = None) -> Tensor:
    """Sum (and divide) the per-row losses in their working dtype; round once to ``dtype``.

    Given their sum on the host (``host_sum``, in float64) and a number for denominator,
    the quotient is formed there and made a tensor in one call: no pass over ``per``.
    """
    reduction = p.options.reduction
    if reduction == "none":
        return per.to(dtype)
    d = _denominator(p) if reduction == "mean" else 1
    if host_sum is not None and isinstance(d, (int, float)) and d:
        return torch.full((), host_sum / d, dtype=dtype, device=per.device)
    summed = total(per)
    return (summed if reduction == "sum" else summed / d).to(dtype)


def _finish(grads: Grads, p: Sweep, unbatched: bool, scale: Tensor | None = None) -> Grads:
    """Round the gradients once to their parameters' dtypes (times ``scale``, out of place)."""
    dtypes = (p.a.dtype, p.w.dtype, None if p.b is None else p.b.dtype)

    def one(d: Tensor | None, dtype: torch.dtype | None) -> Tensor | None:
        if d is None or dtype is None:
            return None
        d = d.to(dtype)
        return d if scale is None else d * scale.to(dtype)

    d_input, d_weight, d_bias = (one(d, t) for d, t in zip(grads, dtypes, strict=True))
    if unbatched and d_input is not None:
        d_input = d_input.squeeze(0)
    return d_input, d_weight, d_bias


def _forward(p: Sweep, needs: Needs,
             settings: LinearCESettings) -> tuple[Tensor, Tensor | None, Grads]:
    """The loss, the reduced z-loss and, for ``mean``/``sum`` when ``needs`` any, the
    gradients for ``grad_output = 1`` (rounded to the parameters' dtypes)."""
    dtype = _result_dtype(p, settings)
    reduction = p.options.reduction
    g = None
    if reduction != "none" and any(needs):
        one = torch.ones((), dtype=p.work, device=p.a.device)
        g = upstream(one, reduction, _denominator(p), p.logits_like().select(1, 0))
        g = g.contiguous()
    per, z, grads, host_sum = sweep(p, g, needs)
    z_loss = None if z is None else _reduce(z, p, dtype)
    return _reduce(per, p, dtype, host_sum), z_loss, grads


def _tangent(p: Sweep, tangents: tuple[Tensor | None, ...],
             dtype: torch.dtype) -> Tensor:
    r"""Forward-mode derivative: :math:`\dot L_n = \sum_j U_{nj}\dot x_{nj}` with
    :math:`U_{nj} = \partial L_n/\partial x_{nj}` and
    :math:`\dot x = \dot a W^\top + a\dot W^\top + \dot b`, then reduced.

    It forms all :math:`N \times V` logits at once: forward mode is for checking.
    """
    da, dw, db = tangents
    x = chunk_logits(p, p.a)
    parts = softmax_parts(x)
    ones = p.a.new_ones(p.a.shape[0], dtype=p.work)
    u = chunk_gradient(p, x if p.options.softcap else None, parts, p.t, ones, in_place=False)
    dx = torch.zeros_like(u)
    if da is not None:
        dx = dx + (da.reshape(p.a.shape) @ p.w.t()).to(u.dtype)
    if dw is not None:
        dx = dx + (p.a @ dw.t()).to(u.dtype)
    if db is not None:
        dx = dx + db.to(u.dtype)
    return _reduce((u * dx).sum(1), p, dtype)


# ------------------------------------------------------------------- autograd


class LinearCrossEntropy(torch.autograd.Function):
    """``F.linear_cross_entropy`` whose forward and backward run chunk by chunk.

    ``forward(input, linear_weight, linear_bias, target, weight, settings, needs)``
    (``settings`` a :class:`~byhand.linear_ce_arguments.LinearCESettings`, or a dict of
    its fields) returns ``(loss, z_loss, d_input, d_weight, d_bias)``. For ``mean`` and
    ``sum`` the gradients wanted (``needs``) for ``grad_output = 1`` are computed in the
    forward's sweep, while each chunk's logits exist anyway, and are outputs (not
    differentiable); the backward scales them out of place. For ``none`` the backward
    recomputes each chunk, out of place, since it needs one ``grad_output`` per row. With
    nothing needed, the forward computes the loss only (and :func:`linear_cross_entropy`
    then skips this function unless a forward-mode tangent is present). Out of place,
    the backward runs under ``is_grads_batched``; :func:`torch.compile` traces it whole.

    Examples:
        >>> a = torch.tensor([[1.0, -0.5], [0.2, 0.3]], requires_grad=True)
        >>> W, y = torch.eye(3, 2), torch.tensor([0, 2])
        >>> settings = dict(reduction="mean", ignore_index=None, label_smoothing=0.0,
        ...     chunk_size=1, vocab_chunk_size=None, softcap=None, lse_square_scale=0.0,
        ...     denominator=None, result_dtype=None)
        >>> loss = LinearCrossEntropy.apply(a, W, None, y, None, settings, Needs(True, False, False))[0]
        >>> loss.backward()
        >>> a.grad
        tensor([[-0.1857,  0.0701],
                [ 0.1710,  0.1890]])
    """

    @staticmethod
    def forward(input: Tensor, linear_weight: Tensor, linear_bias: Tensor | None,
                target: Tensor, weight: Tensor | None,
                settings: LinearCESettings | Mapping[str, Any],
                needs: Needs) -> tuple[Tensor | None, ...]:
        settings = LinearCESettings.of(settings)
        p = prepare(input, linear_weight, linear_bias, target, weight, settings)
        loss, z_loss, grads = _forward(p, needs, settings)
        if p.options.reduction == "none":
            if input.dim() == 1:
                loss = loss.squeeze(0)
                z_loss = None if z_loss is None else z_loss.squeeze(0)
            return loss, z_loss, None, None, None
        return loss, z_loss, *_finish(grads, p, input.dim() == 1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
        input, linear_weight, linear_bias, target, weight, settings, needs = inputs
        grads = [g for g in output[1:] if g is not None]
        ctx.mark_non_differentiable(*grads)
        ctx.save_for_backward(input, linear_weight, linear_bias, target, weight, *output[2:])
        ctx.save_for_forward(input, linear_weight, linear_bias, target, weight)
        ctx.settings, ctx.needs = LinearCESettings.of(settings), needs

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: Tensor, *_: Any) -> tuple[Tensor | None, ...]:
        input, linear_weight, linear_bias, target, weight, *saved = ctx.saved_tensors
        wanted = Needs(*ctx.needs_input_grad[:3])
        grads: list[Tensor | None]
        if ctx.settings.reduction != "none":
            grads = [None if d is None else d * grad_loss.to(d.dtype) for d in saved]
        else:
            p = prepare(input, linear_weight, linear_bias, target, weight, ctx.settings)
            g = grad_loss.reshape(p.a.shape[0]).to(p.work)
            grads = list(_finish(sweep(p, g, wanted, in_place=False).grads, p,
                                 input.dim() == 1))
        return (*(d if need else None for d, need in zip(grads, wanted, strict=True)),
                None, None, None, None)


class LinearCrossEntropyForwardAD(LinearCrossEntropy):
    """:class:`LinearCrossEntropy` with forward-mode AD (``jvp``); used outside
    :func:`torch.compile`, which does not trace a custom ``jvp``."""

    @staticmethod
    def jvp(ctx: Any, d_input: Tensor | None, d_weight: Tensor | None,
            d_bias: Tensor | None, *_: Any) -> tuple[Tensor | None, ...]:
        input, linear_weight, linear_bias, target, weight = ctx.saved_tensors
        p = prepare(input, linear_weight, linear_bias, target, weight, ctx.settings)
        dot = _tangent(p, (d_input, d_weight, d_bias), _result_dtype(p, ctx.settings))
        if p.options.reduction == "none" and input.dim() == 1:
            dot = dot.squeeze(0)
        return dot, None, None, None, None


# ------------------------------------------------------------------------- public API


def linear_cross_entropy_forward_backward(
    input: Tensor, linear_weight: Tensor, target: Tensor, *,
    linear_bias: Tensor | None = None, weight: Tensor | None = None,
    reduction: Literal["mean", "sum"] = "mean", ignore_index: int | None = None,
    label_smoothing: float = 0.0, chunk_size: int | None = None,
    vocab_chunk_size: int | None = None, softcap: float | None = None,
    lse_square_scale: float = 0.0, denominator: Tensor | float | None = None,
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
    settings = LinearCESettings(
        reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
        chunk_size=chunk_size, vocab_chunk_size=vocab_chunk_size, softcap=softcap,
        lse_square_scale=lse_square_scale, denominator=denominator)
    p = prepare(input, linear_weight, linear_bias, target, weight, settings)
    loss, _, grads = _forward(p, ALL_GRADIENTS, settings)
    return loss, _finish(grads, p, input.dim() == 1)


def linear_cross_entropy_backward(
    grad_output: Tensor, input: Tensor, linear_weight: Tensor, target: Tensor, *,
    linear_bias: Tensor | None = None, weight: Tensor | None = None,
    reduction: Reduction = "mean", ignore_index: int | None = None,
    label_smoothing: float = 0.0, chunk_size: int | None = None,
    vocab_chunk_size: int | None = None, softcap: float | None = None,
    lse_square_scale: float = 0.0, denominator: Tensor | float | None = None,
    needs: Needs = ALL_GRADIENTS,
) -> Grads:
    r"""Gradients of :func:`linear_cross_entropy` for ``input``, ``linear_weight``, ``linear_bias``.

    .. math::

       \begin{aligned}
       \frac{\partial L}{\partial a_{np}} &= \sum_j G_{nj} W_{jp}, \\
       \frac{\partial L}{\partial W_{jp}} &= \sum_n G_{nj} a_{np}, \\
       \frac{\partial L}{\partial b_j} &= \sum_n G_{nj},
       \end{aligned}

    with :math:`G_{nj} = g_n(s_{nj}\sum_k \tilde t_{nk} - \tilde t_{nj})` (plus the z-loss's
    and the soft cap's terms, :func:`byhand.chunked_sweep.chunk_gradient`) formed one
    chunk of rows at a time; :math:`g_n` is ``grad_output`` (per row for ``none``,
    divided by the ``mean`` denominator for ``mean``). ``needs`` (a :class:`Needs`)
    skips the products of gradients not wanted; a skipped gradient, and the bias
    gradient without a bias, is None.

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
    settings = LinearCESettings(
        reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
        chunk_size=chunk_size, vocab_chunk_size=vocab_chunk_size, softcap=softcap,
        lse_square_scale=lse_square_scale, denominator=denominator)
    p = prepare(input, linear_weight, linear_bias, target, weight, settings)
    if reduction == "none":
        g = grad_output.to(input.dtype).reshape(p.a.shape[0]).to(p.work).contiguous()
        return _finish(sweep(p, g, needs).grads, p, input.dim() == 1)
    _, _, grads = _forward(p, Needs(*needs), settings)
    return _finish(grads, p, input.dim() == 1, grad_output)


def _k_dimensional(inputs: LinearCEInputs,
                   settings: LinearCESettings) -> tuple[Tensor, Tensor | None]:
    r"""A ``(V, d1, ..., H)`` weight: one 2-D call per position :math:`d`, each dividing
    its ``mean`` by the denominator of all positions, so the sum is the one mean."""
    input, linear_weight, linear_bias, target, weight = inputs
    if input.dim() != 2:
        raise ArgumentValueError(
            f"{_FN}: a K-dimensional linear_weight {tuple(linear_weight.shape)} needs a "
            f"batched input (N, H); got shape {tuple(input.shape)}")
    check_linear(input, linear_weight, linear_bias)
    n_classes, extra = linear_weight.shape[0], tuple(linear_weight.shape[1:-1])
    positions = math.prod(extra)
    w = linear_weight.reshape(n_classes, positions, input.shape[1])
    b = None if linear_bias is None else linear_bias.reshape(n_classes, positions)
    shape = (input.shape[0], n_classes, *extra)
    probabilities = target.shape == shape
    t = target.reshape(*target.shape[:1 + probabilities], positions)
    validate(_FN, stand_in(input, shape, logits_dtype(input, settings)), target,
             options_from(target, shape, weight, settings))
    per_position = settings
    if settings.reduction == "mean" and settings.denominator is None:
        like = stand_in(input, (input.shape[0] * positions, n_classes), torch.float32)
        flat = (t.movedim(-1, 1).reshape(-1, n_classes) if probabilities
                else t.t().reshape(-1))
        per_position = dataclasses.replace(settings, denominator=denominator(
            like, flat, options_from(flat, like.shape, weight, settings)))
    losses, z_losses = [], []
    for k in range(positions):
        position = LinearCEInputs(input, w[:, k], None if b is None else b[:, k], t[..., k],
                                  weight)
        loss, z = _apply(position, per_position)
        losses.append(loss)
        if z is not None:
            z_losses.append(z)
    z = torch.stack(z_losses, -1) if z_losses else None
    if settings.reduction == "none":
        shape = (input.shape[0], *extra)
        return torch.stack(losses, -1).reshape(shape), None if z is None else z.reshape(shape)
    return torch.stack(losses).sum(), None if z is None else z.sum()


def _evaluate(inputs: LinearCEInputs, settings: LinearCESettings) -> tuple[Tensor, Tensor | None]:
    """The loss and the reduced z-loss alone, as ``LinearCrossEntropy.forward`` gives them
    when no gradient is needed, without the autograd function's bookkeeping."""
    p = prepare(*inputs, settings)
    loss, z_loss, _ = _forward(p, Needs(False, False, False), settings)
    if settings.reduction == "none" and inputs.input.dim() == 1:
        return loss.squeeze(0), None if z_loss is None else z_loss.squeeze(0)
    return loss, z_loss


def _apply(inputs: LinearCEInputs, settings: LinearCESettings) -> tuple[Tensor, Tensor | None]:
    """The loss and the reduced z-loss through the autograd function (its forward-AD
    variant outside :func:`torch.compile`), or by :func:`_evaluate` where no gradient and
    no tangent can flow (``no_grad``, ``inference_mode``, nothing requiring grad)."""
    grad = torch.is_grad_enabled()
    needs = Needs(*(grad and t is not None and t.requires_grad
                    for t in (inputs.input, inputs.linear_weight, inputs.linear_bias)))
    compiling = torch.compiler.is_compiling()
    if not any(needs) and not compiling and not has_tangent(inputs, settings):
        return _evaluate(inputs, settings)
    fn = LinearCrossEntropy if compiling else LinearCrossEntropyForwardAD
    out = fn.apply(*inputs, settings, needs)  # type: ignore[no-untyped-call]  # unannotated in torch
    return out[0], out[1]


@overload
def linear_cross_entropy(
    input: Tensor, linear_weight: Tensor, target: Tensor, *,
    linear_bias: Tensor | None = ..., weight: Tensor | None = ..., reduction: Reduction = ...,
    ignore_index: int | None = ..., label_smoothing: float = ..., options: Any = ...,
    chunk_size: int | None = ..., vocab_chunk_size: int | None = ...,
    softcap: float | None = ..., lse_square_scale: float = ...,
    denominator: Tensor | float | None = ..., return_z_loss: Literal[False] = ...,
) -> Tensor: ...


@overload
def linear_cross_entropy(
    input: Tensor, linear_weight: Tensor, target: Tensor, *,
    linear_bias: Tensor | None = ..., weight: Tensor | None = ..., reduction: Reduction = ...,
    ignore_index: int | None = ..., label_smoothing: float = ..., options: Any = ...,
    chunk_size: int | None = ..., vocab_chunk_size: int | None = ...,
    softcap: float | None = ..., lse_square_scale: float = ...,
    denominator: Tensor | float | None = ..., return_z_loss: Literal[True],
) -> tuple[Tensor, Tensor]: ...


def linear_cross_entropy(
    input: Tensor, linear_weight: Tensor, target: Tensor, *,
    linear_bias: Tensor | None = None, weight: Tensor | None = None,
    reduction: Reduction = "mean", ignore_index: int | None = None,
    label_smoothing: float = 0.0, options: Any = None, chunk_size: int | None = None,
    vocab_chunk_size: int | None = None, softcap: float | None = None,
    lse_square_scale: float = 0.0, denominator: Tensor | float | None = None,
    return_z_loss: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Drop-in for :func:`torch.nn.functional.linear_cross_entropy`, chunked, backward by hand.

    Equal to ``cross_entropy(input @ linear_weight.T + linear_bias, target, ...)``
    with every option of :func:`byhand.cross_entropy`, but no tensor of ``N x V``
    logits is ever formed: rows go ``chunk_size`` at a time (default
    :func:`default_chunk_size`, or ``options.batch_chunk_size`` of PyTorch's
    :class:`torch.nn.LinearCrossEntropyOptions`, whose other fields do not change the
    result here), and with ``vocab_chunk_size`` the classes too. ``ignore_index``
    defaults to None, which means -100 for class indices and is the only value allowed
    with class-probability targets, as in PyTorch. A ``(V, d1, ..., H)`` weight gives
    the K-dimensional loss, as in PyTorch. Under :func:`torch.autocast` the matmuls run
    in its dtype and the loss is float32, as PyTorch's.

    Beyond PyTorch (see :class:`byhand.cross_entropy_core.CrossEntropyOptions`):
    ``softcap`` :math:`c` caps the logits to :math:`c\tanh(x/c)`; ``lse_square_scale``
    :math:`\zeta` adds the z-loss :math:`\zeta\mu_n\mathrm{lse}_n^2` (with
    ``return_z_loss`` the reduced z-loss, detached, comes back too); ``denominator``
    :math:`D` is what ``mean`` divides by instead of the local count.

    Examples:
        >>> a = torch.tensor([[1.0, -0.5], [0.2, 0.3], [-1.0, 2.0]], requires_grad=True)
        >>> W, y = torch.eye(3, 2), torch.tensor([0, 1, 2])
        >>> loss = linear_cross_entropy(a, W, y, chunk_size=2, vocab_chunk_size=2)
        >>> loss.backward()
        >>> loss
        tensor(1.2024, grad_fn=<LinearCrossEntropyForwardADBackward>)
        >>> ref = torch.nn.functional.cross_entropy(a.detach() @ W.T, y)
        >>> torch.allclose(loss, ref)
        True
        >>> linear_cross_entropy(a, W, torch.tensor([0, 1]))
        Traceback (most recent call last):
            ...
        ValueError: linear_cross_entropy: target batch size must match input batch size 3; got 2
    """
    no_target_grad(_FN, target, weight)
    if options is not None and chunk_size is None:
        chunk_size = getattr(options, "batch_chunk_size", None)
    inputs = LinearCEInputs(input, linear_weight, linear_bias, target, weight)
    autocast = autocasting(input)
    inputs, result_dtype = autocast_arguments(inputs) if autocast else (inputs, None)
    settings = LinearCESettings(
        reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
        chunk_size=chunk_size, vocab_chunk_size=vocab_chunk_size, softcap=softcap,
        lse_square_scale=lse_square_scale, denominator=denominator, result_dtype=result_dtype)
    off = (torch.autocast(input.device.type, enabled=False) if autocast
           else contextlib.nullcontext())
    with off:
        if linear_weight.dim() > 2:
            loss, z_loss = _k_dimensional(inputs, settings)
        else:
            loss, z_loss = _apply(inputs, settings)
    if not return_z_loss:
        return loss
    if z_loss is None:
        z_loss = torch.zeros_like(loss.detach())
    return loss, z_loss.detach()
