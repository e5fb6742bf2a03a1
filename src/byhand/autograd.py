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
from .cross_entropy_core import Reduction, no_target_grad

__all__ = ["CrossEntropy", "NLLLoss", "NLLLossBackward", "cross_entropy", "nll_loss"]


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
        """The input gradient by :func:`byhand.losses.cross_entropy_backward`; none for the rest."""
        input, target, weight = ctx.saved_tensors
        grad = losses.cross_entropy_backward(grad_output, input, target, weight, *ctx.options)
        return grad, None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, input_tangent: Tensor, *_: Any) -> Tensor:
        r"""Forward mode: :math:`\dot L_n = \sum_j (\partial L_n/\partial x_{nj})\,\dot x_{nj}`, reduced.

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


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Drop-in for :func:`torch.nn.functional.cross_entropy`; ``loss.backward()`` runs our backward.

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
    no_target_grad("cross_entropy", target, weight)
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
    """Drop-in for :func:`torch.nn.functional.nll_loss`; ``loss.backward()`` runs our backward.

    Examples:
        >>> logp = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), dim=1).requires_grad_()
        >>> nll_loss(logp, torch.tensor([0, 1])).backward()
        >>> logp.grad
        tensor([[-0.5000,  0.0000,  0.0000],
                [ 0.0000, -0.5000,  0.0000]])
    """
    no_target_grad("nll_loss", target, weight)
    loss: Tensor = NLLLoss.apply(  # type: ignore[no-untyped-call]  # unannotated in torch
        input, target, weight, ignore_index, reduction
    )
    return loss
