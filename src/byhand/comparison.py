r"""Compare a hand-derived gradient with a reference, and estimate gradients numerically.

:func:`compare` reports three things about ``ours`` against ``reference``: whether
they are bit-for-bit equal, whether they agree to floating-point tolerance
(:func:`torch.allclose`), and the largest absolute difference
:math:`\max_k |a_k - b_k|`; its one-line report puts the verdict first and fits a
phone's column. :func:`assert_close` raises when they do not agree, with PyTorch's
argument order (``actual``, ``expected``). :func:`numerical_gradient` estimates
:math:`\partial f/\partial x_k \approx (f(x + h e_k) - f(x - h e_k)) / 2h` by central
differences, the reference that needs neither autograd nor our algebra.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

import torch
from torch import Tensor

__all__ = [
    "Comparison",
    "assert_close",
    "autograd_gradient",
    "compare",
    "default_tolerances",
    "numerical_gradient",
]


@dataclass(frozen=True)
class Comparison:
    """The verdict of :func:`compare`; ``str()`` gives a one-line report, verdict first.

    The verdict is ``✓ exact`` (bit-for-bit equal), ``✓ approximate`` (within the
    tolerances) or ``✗ not close``; then the largest absolute difference, then the name.

    Examples:
        >>> result = compare("d/dx", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
        >>> result.exact, result.close, result.max_abs_diff
        (True, True, 0.0)
        >>> print(result)
        ✓ exact        max diff 0         d/dx
    """

    name: str
    exact: bool
    close: bool
    max_abs_diff: float

    @property
    def verdict(self) -> str:
        """``exact``, ``approximate`` or ``not close``."""
        return "exact" if self.exact else "approximate" if self.close else "not close"

    def __str__(self) -> str:
        mark = "✓" if self.close else "✗"
        diff = "0" if self.max_abs_diff == 0 else f"{self.max_abs_diff:.2e}"
        return f"{mark} {self.verdict:<11}  max diff {diff:<8}  {self.name}".rstrip()


def compare(
    name: str, ours: Tensor, reference: Tensor, rtol: float | None = None, atol: float | None = None
) -> Comparison:
    """Compare ``ours`` with ``reference`` (same shape) and return the three-part verdict.

    Tolerances default to those of :func:`torch.testing.assert_close` for the dtype.

    Examples:
        >>> print(compare("d/dx", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5])))
        ✗ not close    max diff 5.00e-01  d/dx
        >>> print(compare("d/dx", torch.tensor([1.0, 1.0 + 1e-6]), torch.tensor([1.0, 1.0])))
        ✓ approximate  max diff 9.54e-07  d/dx
    """
    if ours.shape != reference.shape:
        raise ValueError(
            f"compare({name!r}): ours must have the reference's shape {tuple(reference.shape)}; "
            f"got {tuple(ours.shape)}"
        )
    ours_d, ref_d = ours.detach(), reference.detach().to(ours.dtype)
    default_rtol, default_atol = default_tolerances(ours.dtype)
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


@overload
def assert_close(actual: Tensor, expected: Tensor, *, rtol: float | None = None,
                 atol: float | None = None, name: str = "") -> Comparison: ...


@overload
def assert_close(actual: str, expected: Tensor, reference: Tensor, /, *tolerances: float | None,
                 rtol: float | None = None, atol: float | None = None) -> Comparison: ...


def assert_close(actual: Tensor | str, expected: Tensor, *legacy: Any, rtol: float | None = None,
                 atol: float | None = None, name: str = "") -> Comparison:
    """Like :func:`compare`, but raise :class:`AssertionError` with the report when not close.

    The argument order is :func:`torch.testing.assert_close`'s: ``actual`` (ours),
    ``expected`` (the reference), tolerances and the label ``name`` by keyword. The
    0.1.0 form ``assert_close(name, ours, reference, rtol, atol)`` still works and
    warns (:class:`DeprecationWarning`).

    Examples:
        >>> assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), name="d/dx")
        Traceback (most recent call last):
            ...
        AssertionError: gradient mismatch: ✗ not close    max diff 5.00e-01  d/dx
        >>> print(assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]), name="d/dx"))
        ✓ exact        max diff 0         d/dx
    """
    if isinstance(actual, str):
        warnings.warn("assert_close(name, ours, reference) is deprecated; use "
                      "assert_close(ours, reference, name=name), PyTorch's order",
                      DeprecationWarning, stacklevel=2)
        name, actual, expected = actual, expected, legacy[0]
        rtol = legacy[1] if len(legacy) > 1 else rtol
        atol = legacy[2] if len(legacy) > 2 else atol
    elif legacy:
        raise TypeError(f"assert_close() takes 2 positional arguments but {2 + len(legacy)} "
                        "were given; pass rtol, atol and name by keyword")
    result = compare(name, actual, expected, rtol, atol)
    if not result.close:
        raise AssertionError(f"gradient mismatch: {result}")
    return result


def default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """``(rtol, atol)`` of :func:`torch.testing.assert_close` for ``dtype``.

    Examples:
        >>> default_tolerances(torch.float64)
        (1e-07, 1e-07)
    """
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

    Examples:
        >>> numerical_gradient(lambda x: (x ** 3).sum(), torch.tensor([1.0, 2.0]))
        tensor([ 3.0000, 12.0000], dtype=torch.float64)
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
    """The gradient of a scalar ``f`` at ``x`` as PyTorch's autograd computes it.

    Examples:
        >>> autograd_gradient(lambda x: (x ** 3).sum(), torch.tensor([1.0, 2.0]))
        tensor([ 3., 12.])
    """
    leaf = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(leaf), leaf)
    return grad
