"""Differentiable drop-ins for ``F.cross_entropy`` and ``F.nll_loss`` whose backward is ours.

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
:math:`-g_i m_i w_{y_i}` at the target entry), so its backward is a ``Function`` of
its own, :class:`NLLLossBackward`, whose input derivative is zero and whose derivative
with respect to the upstream gradient is NLL itself, as in PyTorch.

Gradients flow to ``input`` only: ``weight`` and ``target`` are treated as constants,
and a ``weight`` or class-probability ``target`` that requires a gradient is rejected
rather than silently given none (unless gradient recording is off, as under
``torch.no_grad()``, where nothing is differentiated and PyTorch accepts it too).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import losses
from .losses import Reduction

__all__ = ["CrossEntropy", "NLLLoss", "NLLLossBackward", "cross_entropy", "nll_loss"]


def _no_target_grad(fn: str, target: Tensor, weight: Tensor | None) -> None:
    if not torch.is_grad_enabled():
        return
    for name, t in (("target", target), ("weight", weight)):
        if t is not None and t.requires_grad:
            raise ValueError(
                f"byhand.{fn}: gradients flow to input only; got a {name} that requires grad "
                f"(use torch.nn.functional.{fn} to differentiate with respect to {name})"
            )


class CrossEntropy(torch.autograd.Function):
    """``F.cross_entropy`` with the hand-derived backward of :func:`byhand.losses.cross_entropy_backward`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
        reduction: Reduction, label_smoothing: float,
    ) -> Tensor:
        return losses.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        input, target, weight, *options = inputs
        ctx.save_for_backward(input, target, weight)
        ctx.save_for_forward(input, target, weight)
        ctx.options = tuple(options)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        input, target, weight = ctx.saved_tensors
        grad = losses.cross_entropy_backward(grad_output, input, target, weight, *ctx.options)
        return grad, None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, input_tangent: Tensor, *_: Any) -> Tensor:
        r"""Forward mode: :math:`\dot L_i = \sum_c (\partial L_i/\partial x_{ic})\,\dot x_{ic}`, reduced.

        The partial derivatives are our backward for an upstream gradient of ones.
        """
        input, target, weight = ctx.saved_tensors
        reduction = ctx.options[1]
        losses_shape = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
        ones = input.new_ones(()).expand(losses_shape if reduction == "none" else ())
        grad = losses.cross_entropy_backward(ones, input, target, weight, *ctx.options)
        if reduction == "none":
            return (grad * input_tangent).sum(0 if input.dim() == 1 else 1)
        return (grad * input_tangent).sum()


class NLLLoss(torch.autograd.Function):
    """``F.nll_loss`` with the hand-derived backward of :func:`byhand.losses.nll_loss_backward`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
        reduction: Reduction,
    ) -> Tensor:
        return losses.nll_loss(input, target, weight, ignore_index, reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        input, target, weight, *options = inputs
        ctx.save_for_backward(input, target, weight)
        ctx.save_for_forward(input, target, weight)
        ctx.options = tuple(options)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
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

    Its output :math:`-g_i m_i w_{y_i}\delta_{c y_i}` is linear in the upstream gradient
    :math:`g` and constant in the input :math:`x`: the derivative with respect to
    :math:`x` is zero, and the vector-Jacobian product with respect to :math:`g` for a
    cotangent :math:`v_{ic}` is :math:`-m_i w_{y_i} v_{i y_i}` reduced like the loss,
    which is :func:`byhand.losses.nll_loss` of :math:`v`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        grad_output: Tensor, input: Tensor, target: Tensor, weight: Tensor | None,
        ignore_index: int, reduction: Reduction,
    ) -> Tensor:
        return losses.nll_loss_backward(grad_output, input, target, weight, ignore_index,
                                        reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        _, input, target, weight, *options = inputs
        ctx.save_for_backward(input, target, weight)
        ctx.save_for_forward(input, target, weight)
        ctx.options = tuple(options)

    @staticmethod
    def backward(ctx: Any, grad_grad: Tensor) -> tuple[Tensor | None, ...]:
        input, target, weight = ctx.saved_tensors
        grad_output = losses.nll_loss(grad_grad, target, weight, *ctx.options)
        return grad_output, torch.zeros_like(input), None, None, None, None

    @staticmethod
    def jvp(ctx: Any, grad_output_tangent: Tensor, *_: Any) -> Tensor:
        """Forward mode: linear in ``grad_output`` and constant in ``input``."""
        input, target, weight = ctx.saved_tensors
        return losses.nll_loss_backward(grad_output_tangent, input, target, weight, *ctx.options)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Drop-in for :func:`torch.nn.functional.cross_entropy`; ``loss.backward()`` runs our backward."""
    _no_target_grad("cross_entropy", target, weight)
    loss: Tensor = CrossEntropy.apply(  # type: ignore[no-untyped-call]  # unannotated in torch
        input, target, weight, ignore_index, reduction, label_smoothing
    )
    return loss


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> Tensor:
    """Drop-in for :func:`torch.nn.functional.nll_loss`; ``loss.backward()`` runs our backward."""
    _no_target_grad("nll_loss", target, weight)
    loss: Tensor = NLLLoss.apply(  # type: ignore[no-untyped-call]  # unannotated in torch
        input, target, weight, ignore_index, reduction
    )
    return loss
