r"""Compare a hand-derived gradient with a reference, and estimate gradients numerically.

:func:`compare` reports three things about ``ours`` against ``reference``: whether
they are bit-for-bit equal, whether they agree to floating-point tolerance
(:func:`torch.allclose`), and the largest absolute difference
:math:`\max_k |a_k - b_k|`. :func:`numerical_gradient` estimates
:math:`\partial f/\partial x_k \approx (f(x + h e_k) - f(x - h e_k)) / 2h` by central
differences, the reference that needs neither autograd nor our algebra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Comparison", "compare", "assert_close", "numerical_gradient", "autograd_gradient"]


@dataclass(frozen=True)
class Comparison:
    """The verdict of :func:`compare`; ``str()`` gives a one-line report."""

    name: str
    exact: bool
    close: bool
    max_abs_diff: float

    def __str__(self) -> str:
        return (
            f"{self.name:<18} | exact: {str(self.exact):<5} | "
            f"approximate: {str(self.close):<5} | max diff: {self.max_abs_diff:.2e}"
        )


def compare(
    name: str, ours: Tensor, reference: Tensor, rtol: float | None = None, atol: float | None = None
) -> Comparison:
    """Compare ``ours`` with ``reference`` (same shape) and return the three-part verdict.

    Tolerances default to those of :func:`torch.testing.assert_close` for the dtype.
    """
    if ours.shape != reference.shape:
        raise ValueError(
            f"compare({name!r}): ours must have the reference's shape {tuple(reference.shape)}; "
            f"got {tuple(ours.shape)}"
        )
    ours_d, ref_d = ours.detach(), reference.detach().to(ours.dtype)
    default_rtol, default_atol = _default_tolerances(ours.dtype)
    diff = (ours_d - ref_d).abs()
    max_diff = float(diff.max()) if diff.numel() else 0.0
    return Comparison(
        name=name,
        exact=bool(torch.equal(ours_d, ref_d)),
        close=bool(torch.allclose(ours_d, ref_d,
                                  rtol=default_rtol if rtol is None else rtol,
                                  atol=default_atol if atol is None else atol)),
        max_abs_diff=max_diff,
    )


def assert_close(
    name: str, ours: Tensor, reference: Tensor, rtol: float | None = None, atol: float | None = None
) -> Comparison:
    """Like :func:`compare`, but raise :class:`AssertionError` with the report when not close."""
    result = compare(name, ours, reference, rtol, atol)
    if not result.close:
        raise AssertionError(f"gradient mismatch: {result}")
    return result


def _default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    table = {
        torch.float16: (1e-3, 1e-5),
        torch.bfloat16: (1.6e-2, 1e-5),
        torch.float32: (1.3e-6, 1e-5),
        torch.float64: (1e-7, 1e-7),
    }
    return table.get(dtype, (1.3e-6, 1e-5))


def numerical_gradient(f: Callable[[Tensor], Tensor], x: Tensor, h: float = 1e-6) -> Tensor:
    r"""Central-difference estimate of :math:`\partial f/\partial x_k` for a scalar ``f``.

    Runs in float64 (``x`` is converted) and costs two calls of ``f`` per element, so
    use it on small inputs. The error is :math:`O(h^2)` plus rounding :math:`O(\epsilon/h)`.
    """
    x64 = x.detach().to(torch.float64).clone()
    grad = torch.zeros_like(x64)
    flat, gflat = x64.view(-1), grad.view(-1)
    for k in range(flat.numel()):
        saved = float(flat[k])
        flat[k] = saved + h
        upper = float(f(x64))
        flat[k] = saved - h
        lower = float(f(x64))
        flat[k] = saved
        gflat[k] = (upper - lower) / (2 * h)
    return grad


def autograd_gradient(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The gradient of a scalar ``f`` at ``x`` as PyTorch's autograd computes it."""
    leaf = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(leaf), leaf)
    return grad
