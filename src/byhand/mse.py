r"""Mean squared error, forward and backward, exactly as :func:`torch.nn.functional.mse_loss`.

For an input :math:`x_k` and a target :math:`t_k` over :math:`K` elements (the target
broadcast against the input, with PyTorch's warning, when their shapes differ),

.. math::

   \begin{aligned}
   L &= \frac{1}{K}\sum_k (x_k - t_k)^2 \quad(\texttt{mean}), \\
   \frac{\partial L}{\partial x_k} &= \frac{2}{K}\, G\,(x_k - t_k),
   \end{aligned}

with :math:`G` the upstream gradient (``sum`` drops the :math:`1/K`, ``none`` takes one
:math:`g_k` per element). Chapters 5, 7 and 8 use it beside cross-entropy.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from . import cross_entropy_core as _core
from .errors import ArgumentValueError, UnsupportedDTypeError
from .reduction import Reduction, legacy_reduction

__all__ = ["mse_loss", "mse_loss_backward"]


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    r""":math:`L = \frac{1}{K}\sum_k (x_k - t_k)^2` over all :math:`K` elements (``mean``).

    The arguments are :func:`torch.nn.functional.mse_loss`'s, in its order: the legacy
    ``size_average``/``reduce`` (with PyTorch's deprecation warning) and an elementwise
    ``weight`` (``mean`` then divides by its sum). A ``target`` of another shape is
    broadcast against ``input`` with PyTorch's warning. The loss has the promoted dtype
    of input and target, as in PyTorch; the ``mean`` of no elements is
    :math:`0/0 = \mathrm{nan}`.

    Examples:
        >>> mse_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
        tensor(2.5000)
    """
    reduction = legacy_reduction(size_average, reduce, reduction)  # type: ignore[assignment]
    if isinstance(input, Tensor) and isinstance(target, Tensor) and target.shape != input.shape:
        warnings.warn(f"Using a target size ({target.size()}) that is different to the input "
                      f"size ({input.size()}). This will likely lead to incorrect results due "
                      "to broadcasting. Please ensure they have the same size.", stacklevel=2)
    _check_mse(input, target, reduction)
    dtype = torch.promote_types(input.dtype, target.dtype)  # bool - float: as PyTorch, in float
    per = (input.to(dtype) - target.to(dtype)) ** 2
    if weight is not None:
        return _weighted_mse(per, input, weight, reduction)
    return _core.reduce(per, reduction, per.numel())


def _weighted_mse(per: Tensor, input: Tensor, weight: Tensor, reduction: str) -> Tensor:
    r""":math:`\sum_k v_k (x_k - t_k)^2`, over :math:`\sum_k v_k` for ``mean`` (PyTorch's ``weight=``)."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"mse_loss: weight must be a Tensor or None; got {type(weight).__name__}")
    if weight.shape != input.shape:
        raise ValueError(f"mse_loss: weight must have the input's shape {tuple(input.shape)}; "
                         f"got {tuple(weight.shape)}")
    per = per * weight
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.sum() / weight.sum()


def mse_loss_backward(
    grad_output: Tensor, input: Tensor, target: Tensor, reduction: Reduction = "mean"
) -> Tensor:
    r""":math:`\partial L/\partial x_k = 2 g_k (x_k - t_k)`, divided by :math:`K` for ``mean``.

    The gradient has the input's dtype, whatever the target's (as autograd gives it);
    an empty input has an empty gradient.

    Examples:
        >>> mse_loss_backward(torch.tensor(1.0), torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
        tensor([1., 2.])
    """
    _check_mse(input, target, reduction)
    count = torch.broadcast_shapes(input.shape, target.shape).numel()  # type: ignore[no-untyped-call]
    scale = 2.0 / count if reduction == "mean" and count else 2.0
    grad = scale * grad_output * (input - target)
    if grad.shape != input.shape:  # input broadcast against target: sum over the copies
        grad = grad.sum_to_size(input.shape)
    return grad.to(input.dtype) if input.is_floating_point() else grad


def _check_mse(input: Tensor, target: Tensor, reduction: str) -> None:
    for name, value in (("input", input), ("target", target)):
        if not isinstance(value, Tensor):
            raise TypeError(f"mse_loss: {name} must be a Tensor; got {type(value).__name__}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(
            f"mse_loss: reduction must be one of 'mean', 'sum' or 'none'; got {reduction!r}"
        )
    if input.shape != target.shape:
        try:
            torch.broadcast_shapes(input.shape, target.shape)  # type: ignore[no-untyped-call]
        except RuntimeError:
            raise ArgumentValueError(
                f"mse_loss: target size {tuple(target.shape)} does not broadcast with input "
                f"size {tuple(input.shape)}") from None
    if not torch.promote_types(input.dtype, target.dtype).is_floating_point:
        raise UnsupportedDTypeError(
            "mse_loss: input or target must be a floating-point tensor; "
            f"got dtypes {input.dtype} and {target.dtype}"
        )
