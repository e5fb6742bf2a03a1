r"""Differentiable drop-ins for ``F.cross_entropy`` and ``F.nll_loss`` whose backward is ours.

Each is a :class:`torch.autograd.Function` whose ``forward`` calls the pure forward
in :mod:`byhand.losses` and whose ``backward`` calls the matching hand-written
``*_backward``. Autograd only chains our gradient into the rest of the graph.

They are written in the ``setup_context`` style (``forward`` without ``ctx``, a
separate ``setup_context`` that saves what ``backward`` needs) with
``generate_vmap_rule = True``: every method is plain tensor operations, so
``torch.func.grad``, ``jacrev``, ``vmap`` and, with the ``jvp`` methods (forward
mode), ``jacfwd`` and ``hessian`` work through them, with
PyTorch deriving the batched rule by running the methods under ``vmap``.

The backward is itself written in differentiable tensor operations on the saved
input, so second derivatives (``gradgradcheck``, Hessian-vector products) work too.
The gradient of NLL does not depend on the input at all (it is
:math:`-g_n \mu_n w_{y_n}` at the target entry), so its backward is a ``Function`` of
its own, :class:`NLLLossBackward`, whose input derivative is zero and whose derivative
with respect to the upstream gradient is NLL itself, as in PyTorch.

Gradients flow to ``input`` and, as in PyTorch, to a class-probability ``target`` and
its ``weight`` (:func:`byhand.losses.cross_entropy_target_backward`). With class-index
targets a ``weight`` that requires grad is refused, as PyTorch refuses it.

Three paths, one formula. When no gradient is needed (``torch.no_grad()``,
``torch.inference_mode()``, no argument requiring grad) the drop-ins call the pure
forward of :mod:`byhand.losses` directly: no graph node, no saved tensors. Eagerly
with gradients they use the ``Function`` classes here, which ``torch.func`` transforms
(``grad``, ``vmap``, ``jacrev``, ``jacfwd``, ``hessian``) and double backward go through.
Under :func:`torch.compile` they call the operators registered with
:func:`torch.library.custom_op` (``torch.ops.byhand.cross_entropy_loss``,
``nll_loss`` and their backwards), each with a fake (meta) implementation and a
registered autograd formula, which the compiler treats as opaque kernels: no graph
break, and :func:`torch.library.opcheck` checks their registration. Every path calls
the same functions of :mod:`byhand.losses`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import losses
from .cross_entropy_checks import (
    check_types,
    validate,
)
from .cross_entropy_core import (
    CrossEntropyOptions,
    Reduction,
    loss_dtype,
)
from .errors import ArgumentValueError
from .reduction import legacy_reduction

__all__ = ["CrossEntropy", "NLLLoss", "NLLLossBackward", "cross_entropy", "nll_loss"]

_CE_ARGS = "Tensor target, Tensor? weight, int ignore_index, str reduction, float label_smoothing"
_NLL_ARGS = "Tensor target, Tensor? weight, int ignore_index, str reduction"


def _save_inputs(ctx: Any, inputs: tuple[Any, ...]) -> None:
    """Keep ``input``, ``target`` and ``weight`` for the backward and forward modes, and the options."""
    input, target, weight, *options = inputs
    ctx.save_for_backward(input, target, weight)
    ctx.save_for_forward(input, target, weight)
    ctx.options = tuple(options)


class CrossEntropy(torch.autograd.Function):
    """``F.cross_entropy`` with the hand-derived backward of :func:`byhand.losses.cross_entropy_backward`.

    Examples:
        >>> x = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
        >>> CrossEntropy.apply(x, torch.tensor([0, 1]), None, -100, "mean", 0.0).backward()
        >>> x.grad
        tensor([[-0.1705,  0.1212,  0.0493],
                [ 0.0543, -0.0988,  0.0445]])
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
        reduction: Reduction, label_smoothing: float,
    ) -> Tensor:
        """The loss :func:`byhand.losses.cross_entropy` (no ``ctx``: ``setup_context`` saves)."""
        return losses.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        """Save ``input``, ``target`` and ``weight`` for both modes, and the options."""
        _save_inputs(ctx, inputs)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        """The gradients by :func:`byhand.losses.cross_entropy_backward` (and ``_target_backward``)."""
        return (*_cross_entropy_grads(ctx, grad_output, _EAGER_BACKWARDS), None, None, None)

    @staticmethod
    def jvp(ctx: Any, input_tangent: Tensor | None, target_tangent: Tensor | None,
            weight_tangent: Tensor | None, *_: Any) -> Tensor:
        r"""Forward mode: :math:`\dot L_n = \sum_j (\partial L_n/\partial x_{nj})\,\dot x_{nj}`, reduced.

        The partial derivatives are our backward for an upstream gradient of ones. A
        probability target and its weight enter linearly through
        :math:`\tilde t_{nj} = w_j t'_{nj}`: their tangent is the loss of
        :math:`\dot{\tilde t}_{nj} = (1-\varepsilon)w_j\dot t_{nj} + \dot w_j t'_{nj}`.
        """
        input, target, weight = ctx.saved_tensors
        ignore_index, reduction, eps = ctx.options
        out: Tensor | None = None
        if input_tangent is not None:
            losses_shape = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
            ones = input.new_ones(()).expand(losses_shape if reduction == "none" else ())
            grad = losses.cross_entropy_backward(ones, input, target, weight, *ctx.options)
            out = ((grad * input_tangent).sum(0 if input.dim() == 1 else 1)
                   if reduction == "none" else (grad * input_tangent).sum())
        if target.is_floating_point() and (target_tangent is not None or weight_tangent is not None):
            view = (-1,) + (1,) * (input.dim() - 2) if input.dim() > 1 else (-1,)
            q = torch.zeros_like(target)
            if target_tangent is not None:
                w = 1.0 if weight is None else weight.view(view)
                q = q + (1 - eps) * w * target_tangent
            if weight_tangent is not None:
                n_classes = target.shape[0 if input.dim() == 1 else 1]
                t_prime = target * (1 - eps) + (eps / n_classes if n_classes else 0.0)
                q = q + weight_tangent.view(view) * t_prime
            part = losses.cross_entropy(input, q, None, ignore_index, reduction, 0.0)
            out = part if out is None else out + part
        return out if out is not None else torch.zeros_like(losses.cross_entropy(
            input, target, weight, *ctx.options))


class NLLLoss(torch.autograd.Function):
    """``F.nll_loss`` with the hand-derived backward of :func:`byhand.losses.nll_loss_backward`.

    Examples:
        >>> logp = torch.tensor([[-0.5, -1.0], [-2.0, -0.2]], requires_grad=True)
        >>> NLLLoss.apply(logp, torch.tensor([0, 1]), None, -100, "sum").backward()
        >>> logp.grad
        tensor([[-1.,  0.],
                [ 0., -1.]])
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
        reduction: Reduction,
    ) -> Tensor:
        """The loss :func:`byhand.losses.nll_loss` (no ``ctx``: ``setup_context`` saves)."""
        return losses.nll_loss(input, target, weight, ignore_index, reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        """Save ``input``, ``target`` and ``weight`` for both modes, and the options."""
        _save_inputs(ctx, inputs)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        """The input gradient, as the differentiable node :class:`NLLLossBackward`; none for the rest."""
        input, target, weight = ctx.saved_tensors
        # torch.autograd.Function.apply is unannotated in torch (it takes any arguments)
        grad = NLLLossBackward.apply(  # type: ignore[no-untyped-call]
            grad_output, input, target, weight, *ctx.options
        )
        return grad, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, input_tangent: Tensor, *_: Any) -> Tensor:
        """Forward mode: NLL is linear in its input, so its tangent is NLL of the input's tangent."""
        _, target, weight = ctx.saved_tensors
        return losses.nll_loss(input_tangent, target, weight, *ctx.options)


class NLLLossBackward(torch.autograd.Function):
    r"""The NLL backward as a node of its own, so that it can be differentiated again.

    Its output :math:`-g_n \mu_n w_{y_n}\delta_{j y_n}` is linear in the upstream gradient
    :math:`g_n` and constant in the input :math:`x_{nj}`: the derivative with respect to
    :math:`x` is zero, and the vector-Jacobian product with respect to :math:`g_n` for a
    cotangent :math:`v_{nj}` is :math:`-\mu_n w_{y_n} v_{n y_n}` reduced like the loss,
    which is :func:`byhand.losses.nll_loss` of :math:`v`.

    Examples:
        >>> g = torch.tensor(2.0, requires_grad=True)
        >>> grad = NLLLossBackward.apply(g, torch.zeros(2, 3), torch.tensor([0, 2]), None, -100, "mean")
        >>> grad.detach()
        tensor([[-1.,  0.,  0.],
                [ 0.,  0., -1.]])
        >>> torch.autograd.grad(grad[0, 0], g)
        (tensor(-0.5000),)
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        grad_output: Tensor, input: Tensor, target: Tensor, weight: Tensor | None,
        ignore_index: int, reduction: Reduction,
    ) -> Tensor:
        """The NLL input gradient :func:`byhand.losses.nll_loss_backward` of ``grad_output``."""
        return losses.nll_loss_backward(grad_output, input, target, weight, ignore_index,
                                        reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        """Save ``input``, ``target`` and ``weight`` for both modes, and the options."""
        _save_inputs(ctx, inputs[1:])

    @staticmethod
    def backward(ctx: Any, grad_grad: Tensor) -> tuple[Tensor | None, ...]:
        r"""The gradients with respect to ``grad_output`` (NLL of ``grad_grad``) and ``input`` (zero)."""
        input, target, weight = ctx.saved_tensors
        grad_output = losses.nll_loss(grad_grad, target, weight, *ctx.options)
        return grad_output, torch.zeros_like(input), None, None, None, None

    @staticmethod
    def jvp(ctx: Any, grad_output_tangent: Tensor, *_: Any) -> Tensor:
        """Forward mode: linear in ``grad_output`` and constant in ``input``."""
        input, target, weight = ctx.saved_tensors
        return losses.nll_loss_backward(grad_output_tangent, input, target, weight, *ctx.options)


class _Backwards(NamedTuple):
    """The two backwards a cross-entropy node calls: for ``input``, and for ``target`` with ``weight``."""

    input: Callable[..., Tensor]
    target: Callable[..., tuple[Tensor, Tensor | None]]


def _cross_entropy_grads(ctx: Any, grad_output: Tensor,
                         backwards: _Backwards) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """The gradients the node's backward is asked for (``ctx.needs_input_grad``), from ``backwards``."""
    input, target, weight = ctx.saved_tensors
    needs, options = ctx.needs_input_grad, ctx.options
    grad_input = backwards.input(grad_output, input, target, weight, *options) if needs[0] else None
    grad_target = grad_weight = None
    if needs[1] or (needs[2] and target.is_floating_point()):
        grad_target, grad_weight = backwards.target(grad_output, input, target, weight, *options)
        grad_target = grad_target if needs[1] else None
        grad_weight = grad_weight if weight is not None and needs[2] else None
    return grad_input, grad_target, grad_weight


_EAGER_BACKWARDS = _Backwards(losses.cross_entropy_backward, losses.cross_entropy_target_backward)


# ------------------------------------------------------------ the registered operators


def _loss_shape(input: Tensor, reduction: str) -> tuple[int, ...]:
    """The loss's shape: a scalar, or one loss per position for ``none``."""
    if reduction != "none" or input.dim() == 1:
        return ()
    return (input.shape[0], *input.shape[2:])


@torch.library.custom_op("byhand::cross_entropy_loss", mutates_args=(),
                         schema=f"(Tensor input, {_CE_ARGS}) -> Tensor")
def _cross_entropy_op(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                      reduction: str, label_smoothing: float) -> Tensor:
    """:func:`byhand.losses.cross_entropy` as an operator (for :func:`torch.compile`)."""
    return losses.cross_entropy(input, target, weight, ignore_index,
                                reduction, label_smoothing)  # type: ignore[arg-type]


@_cross_entropy_op.register_fake
def _(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: str,
      label_smoothing: float) -> Tensor:
    return input.new_empty(_loss_shape(input, reduction), dtype=loss_dtype(input, target, weight))


@torch.library.custom_op("byhand::cross_entropy_loss_backward", mutates_args=(),
                         schema=f"(Tensor grad_output, Tensor input, {_CE_ARGS}) -> Tensor")
def _cross_entropy_backward_op(grad_output: Tensor, input: Tensor, target: Tensor,
                               weight: Tensor | None, ignore_index: int, reduction: str,
                               label_smoothing: float) -> Tensor:
    """:func:`byhand.losses.cross_entropy_backward` as an operator."""
    return losses.cross_entropy_backward(grad_output, input, target, weight, ignore_index,
                                         reduction, label_smoothing)  # type: ignore[arg-type]


@_cross_entropy_backward_op.register_fake
def _(grad_output: Tensor, input: Tensor, target: Tensor, weight: Tensor | None,
      ignore_index: int, reduction: str, label_smoothing: float) -> Tensor:
    return torch.empty_like(input)


@torch.library.custom_op("byhand::cross_entropy_loss_target_backward", mutates_args=(),
                         schema=f"(Tensor grad_output, Tensor input, {_CE_ARGS}) -> (Tensor, Tensor)")
def _cross_entropy_target_backward_op(
    grad_output: Tensor, input: Tensor, target: Tensor, weight: Tensor | None,
    ignore_index: int, reduction: str, label_smoothing: float,
) -> tuple[Tensor, Tensor]:
    """:func:`byhand.losses.cross_entropy_target_backward` as an operator (no weight: an empty one)."""
    grad_target, grad_weight = losses.cross_entropy_target_backward(
        grad_output, input, target, weight, ignore_index, reduction,  # type: ignore[arg-type]
        label_smoothing)
    return grad_target, (input.new_empty(0) if grad_weight is None else grad_weight)


@_cross_entropy_target_backward_op.register_fake
def _(grad_output: Tensor, input: Tensor, target: Tensor, weight: Tensor | None,
      ignore_index: int, reduction: str, label_smoothing: float) -> tuple[Tensor, Tensor]:
    return torch.empty_like(target), (input.new_empty(0) if weight is None
                                      else torch.empty_like(weight))


def _save_op_inputs(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    _save_inputs(ctx, inputs)


def _cross_entropy_op_backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
    backwards = _Backwards(torch.ops.byhand.cross_entropy_loss_backward,
                           torch.ops.byhand.cross_entropy_loss_target_backward)
    return (*_cross_entropy_grads(ctx, grad_output, backwards), None, None, None)


_cross_entropy_op.register_autograd(_cross_entropy_op_backward, setup_context=_save_op_inputs)


@torch.library.custom_op("byhand::nll_loss", mutates_args=(),
                         schema=f"(Tensor input, {_NLL_ARGS}) -> Tensor")
def _nll_loss_op(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                 reduction: str) -> Tensor:
    """:func:`byhand.losses.nll_loss` as an operator."""
    return losses.nll_loss(input, target, weight, ignore_index, reduction)  # type: ignore[arg-type]


@_nll_loss_op.register_fake
def _(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
      reduction: str) -> Tensor:
    return input.new_empty(_loss_shape(input, reduction))


@torch.library.custom_op("byhand::nll_loss_backward", mutates_args=(),
                         schema=f"(Tensor grad_output, Tensor input, {_NLL_ARGS}) -> Tensor")
def _nll_loss_backward_op(grad_output: Tensor, input: Tensor, target: Tensor,
                          weight: Tensor | None, ignore_index: int, reduction: str) -> Tensor:
    """:func:`byhand.losses.nll_loss_backward` as an operator."""
    return losses.nll_loss_backward(grad_output, input, target, weight, ignore_index,
                                    reduction)  # type: ignore[arg-type]


@_nll_loss_backward_op.register_fake
def _(grad_output: Tensor, input: Tensor, target: Tensor, weight: Tensor | None,
      ignore_index: int, reduction: str) -> Tensor:
    return torch.empty_like(input)


def _nll_loss_op_backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
    input, target, weight = ctx.saved_tensors
    grad = torch.ops.byhand.nll_loss_backward(grad_output, input, target, weight, *ctx.options)
    return grad, None, None, None, None


def _save_backward_inputs(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    _save_inputs(ctx, inputs[1:])


def _nll_loss_backward_op_backward(ctx: Any, grad_grad: Tensor) -> tuple[Tensor | None, ...]:
    """As :class:`NLLLossBackward`: NLL of ``grad_grad`` for ``grad_output``, zero for ``input``."""
    input, target, weight = ctx.saved_tensors
    grad_output = torch.ops.byhand.nll_loss(grad_grad, target, weight, *ctx.options)
    return grad_output, torch.zeros_like(input), None, None, None, None


_nll_loss_op.register_autograd(_nll_loss_op_backward, setup_context=_save_op_inputs)
_nll_loss_backward_op.register_autograd(_nll_loss_backward_op_backward,
                                        setup_context=_save_backward_inputs)


# ------------------------------------------------------------------------ the drop-ins


def _records(*tensors: object) -> bool:
    """Whether autograd records a call on these tensors (a gradient may be asked for)."""
    return torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad
                                           for t in tensors)


def _refuse_weight_grad(fn: str, target: Tensor, weight: Tensor | None) -> None:
    """Class-index targets: PyTorch's NLL kernel has no weight derivative, and refuses one."""
    if (weight is not None and weight.requires_grad and torch.is_grad_enabled()
            and not target.is_floating_point()):
        raise ArgumentValueError(
            f"{fn}: with class-index targets the loss is not differentiable with respect "
            "to weight, so weight cannot require grad (as in PyTorch); detach it")


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Drop-in for :func:`torch.nn.functional.cross_entropy`; ``loss.backward()`` runs our backward.

    The arguments are PyTorch's, in its order (the 4th positional is the legacy
    ``size_average``; it and ``reduce`` warn as in PyTorch). Gradients reach ``input``
    and, for probability targets, ``target`` and ``weight``.

    Examples:
        >>> x = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
        >>> y = torch.tensor([0, 1])
        >>> (ours,) = torch.autograd.grad(cross_entropy(x, y, label_smoothing=0.1), x)
        >>> (theirs,) = torch.autograd.grad(torch.nn.functional.cross_entropy(x, y, label_smoothing=0.1), x)
        >>> torch.allclose(ours, theirs)
        True
        >>> torch.autograd.gradgradcheck(lambda z: cross_entropy(z, y), x.detach().double().requires_grad_())
        True
    """
    reduction = legacy_reduction(size_average, reduce, reduction)  # type: ignore[assignment]
    compiling = torch.compiler.is_compiling()
    if not compiling and not _records(input, target, weight):  # the pure forward checks all
        return losses.cross_entropy(input, target, weight, ignore_index, reduction,
                                    label_smoothing)
    options = CrossEntropyOptions(weight, ignore_index, label_smoothing, reduction)
    check_types(input, target, options)
    ignore_index = operator.index(ignore_index)
    if compiling:
        validate("cross_entropy", input, target, options)  # shapes and dtypes, while tracing
        _refuse_weight_grad("cross_entropy", target, weight)
        loss: Tensor = torch.ops.byhand.cross_entropy_loss(input, target, weight, ignore_index,
                                                      reduction, float(label_smoothing))
        return loss
    if weight is not None and weight.requires_grad:  # the argument errors come first
        validate("cross_entropy", input, target, options)
        _refuse_weight_grad("cross_entropy", target, weight)
    loss = CrossEntropy.apply(  # type: ignore[no-untyped-call]  # unannotated in torch
        input, target, weight, ignore_index, reduction, label_smoothing
    )
    return loss


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Drop-in for :func:`torch.nn.functional.nll_loss`; ``loss.backward()`` runs our backward.

    The arguments are PyTorch's, in its order (the 4th positional is ``size_average``).

    Examples:
        >>> logp = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), dim=1).requires_grad_()
        >>> nll_loss(logp, torch.tensor([0, 1])).backward()
        >>> logp.grad
        tensor([[-0.5000,  0.0000,  0.0000],
                [ 0.0000, -0.5000,  0.0000]])
    """
    reduction = legacy_reduction(size_average, reduce, reduction)  # type: ignore[assignment]
    compiling = torch.compiler.is_compiling()
    if not compiling and not _records(input, weight):  # the pure forward checks all
        return losses.nll_loss(input, target, weight, ignore_index, reduction)
    options = CrossEntropyOptions(weight, ignore_index, 0.0, reduction)
    check_types(input, target, options)
    ignore_index = operator.index(ignore_index)
    if compiling:
        validate("nll_loss", input, target, options, probabilities=False)
        _refuse_weight_grad("nll_loss", target, weight)
        loss: Tensor = torch.ops.byhand.nll_loss(input, target, weight, ignore_index, reduction)
        return loss
    if weight is not None and weight.requires_grad:  # the argument errors come first
        validate("nll_loss", input, target, options, probabilities=False)
        _refuse_weight_grad("nll_loss", target, weight)
    loss = NLLLoss.apply(  # type: ignore[no-untyped-call]  # unannotated in torch
        input, target, weight, ignore_index, reduction
    )
    return loss
