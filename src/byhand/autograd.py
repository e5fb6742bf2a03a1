"""Differentiable drop-ins for ``F.cross_entropy`` and ``F.nll_loss`` whose backward is ours.

Each is a :class:`torch.autograd.Function` whose ``forward`` calls the pure forward
in :mod:`byhand.losses` and whose ``backward`` calls the matching hand-written
``*_backward``. Autograd only chains our gradient into the rest of the graph.

The backward is itself written in differentiable tensor operations on the saved
input, so second derivatives (``gradgradcheck``, Hessian-vector products) work too.
Gradients flow to ``input`` only: ``weight`` and ``target`` are treated as constants,
and a class-probability ``target`` that requires a gradient is rejected rather than
silently given none.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import losses
from .losses import Reduction

__all__ = ["CrossEntropy", "NLLLoss", "cross_entropy", "nll_loss"]


def _no_target_grad(fn: str, target: Tensor, weight: Tensor | None) -> None:
    for name, t in (("target", target), ("weight", weight)):
        if t is not None and t.requires_grad:
            raise ValueError(
                f"byhand.{fn}: gradients flow to input only; got a {name} that requires grad "
                f"(use torch.nn.functional.{fn} to differentiate with respect to {name})"
            )


class CrossEntropy(torch.autograd.Function):
    """``F.cross_entropy`` with the hand-derived backward of :func:`byhand.losses.cross_entropy_backward`."""

    @staticmethod
    def forward(
        ctx: Any, input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
        reduction: Reduction, label_smoothing: float,
    ) -> Tensor:
        ctx.save_for_backward(input, target, weight)
        ctx.options = (ignore_index, reduction, label_smoothing)
        return losses.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        input, target, weight = ctx.saved_tensors
        grad = losses.cross_entropy_backward(grad_output, input, target, weight, *ctx.options)
        return grad, None, None, None, None, None


class NLLLoss(torch.autograd.Function):
    """``F.nll_loss`` with the hand-derived backward of :func:`byhand.losses.nll_loss_backward`."""

    @staticmethod
    def forward(
        ctx: Any, input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
        reduction: Reduction,
    ) -> Tensor:
        ctx.save_for_backward(input, target, weight)
        ctx.options = (ignore_index, reduction)
        return losses.nll_loss(input, target, weight, ignore_index, reduction)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        input, target, weight = ctx.saved_tensors
        grad = losses.nll_loss_backward(grad_output, input, target, weight, *ctx.options)
        return grad, None, None, None, None


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
    return CrossEntropy.apply(input, target, weight, ignore_index, reduction, label_smoothing)


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> Tensor:
    """Drop-in for :func:`torch.nn.functional.nll_loss`; ``loss.backward()`` runs our backward."""
    _no_target_grad("nll_loss", target, weight)
    return NLLLoss.apply(input, target, weight, ignore_index, reduction)
