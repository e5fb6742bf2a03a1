r"""Check a whole hand-written backward against autograd and finite differences.

:func:`check_backward` runs a forward and the backward written for it, compares every
gradient it returns with autograd's and with central differences
(:func:`byhand.comparison.compare`), and returns a :class:`BackwardReport` whose
``str()`` is a readable multi-line verdict with the worst entry and simple hints about
the kind of bug (:mod:`byhand.gradient_hints`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import gradient_hints
from .comparison import Comparison, compare, default_tolerances, numerical_gradient

__all__ = ["BackwardReport", "GradientCheck", "check_backward"]


@dataclass(frozen=True)
class GradientCheck:
    r"""The verdict on one gradient returned by a hand-written backward.

    ``vs_autograd`` and ``vs_numerical`` compare ``ours`` (see :class:`Comparison`)
    with autograd's gradient and with central differences (``None`` when the shapes
    differ or the numerical check was skipped). ``max_rel_diff`` is
    :math:`\max_k |a_k - b_k| / \max(|b_k|, \text{atol})` against autograd, and
    ``worst`` is ``(index, ours, reference)`` at the largest absolute difference.
    ``ours`` and ``reference`` keep the two gradients (autograd's is the reference).

    Examples:
        >>> x = torch.tensor([1.0, -2.0, 3.0])
        >>> report = check_backward("square", lambda x: x ** 2, lambda g, x: 2 * g * x, x)
        >>> check = report.gradients[0]
        >>> check.passed, check.shape, check.vs_numerical.close
        (True, (3,), True)
    """

    name: str
    shape: tuple[int, ...]
    reference_shape: tuple[int, ...]
    vs_autograd: Comparison | None
    vs_numerical: Comparison | None
    max_rel_diff: float
    worst: tuple[tuple[int, ...], float, float] | None
    hints: tuple[str, ...]
    ours: Tensor | None = field(default=None, repr=False, compare=False)
    reference: Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """Same shape, and close to autograd and (when computed) to finite differences."""
        return (
            self.shape == self.reference_shape
            and self.vs_autograd is not None
            and self.vs_autograd.close
            and (self.vs_numerical is None or self.vs_numerical.close)
        )

    def __str__(self) -> str:
        lines = [f"  {self.name}: {'ok' if self.passed else 'WRONG'}"]
        if self.shape == self.reference_shape:
            lines.append(f"    shape {self.shape} matches")
        else:
            lines.append(f"    shape: ours {self.shape}, reference {self.reference_shape}")
        lines.extend(f"    {c}" for c in (self.vs_autograd, self.vs_numerical) if c is not None)
        if self.vs_autograd is not None:
            lines.append(f"    max rel diff {self.max_rel_diff:.2e}")
        if self.worst is not None and not self.passed:
            index, ours, ref = self.worst
            lines.append(f"    worst entry {list(index)}: ours {ours:.6g}, reference {ref:.6g}")
        lines.extend(f"    hint: {hint}" for hint in self.hints)
        return "\n".join(lines)


@dataclass(frozen=True)
class BackwardReport:
    """What :func:`check_backward` found: one :class:`GradientCheck` per checked input.

    ``error`` holds the message when the backward raised instead of returning.
    ``str()`` is the multi-line verdict; :meth:`assert_passed` raises with it.

    Examples:
        >>> x = torch.tensor([1.0, -2.0, 3.0])
        >>> report = check_backward("square", lambda x: x ** 2, lambda g, x: g * x, x)
        >>> report.passed, report.hints[0].split(":")[0]
        (False, 'ours / reference is the constant 0.5 everywhere')
    """

    name: str
    gradients: tuple[GradientCheck, ...]
    error: str | None = None
    error_hints: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """The backward returned, and every checked gradient passed."""
        return self.error is None and all(g.passed for g in self.gradients)

    @property
    def hints(self) -> tuple[str, ...]:
        """Every hint of the report, the backward's error hints first."""
        return self.error_hints + tuple(h for g in self.gradients for h in g.hints)

    def __str__(self) -> str:
        lines = [f"{self.name}: {'PASSED' if self.passed else 'FAILED'}"]
        if self.error is not None:
            lines.append(f"  the backward raised {self.error}")
            lines.extend(f"  hint: {hint}" for hint in self.error_hints)
        lines.extend(str(g) for g in self.gradients)
        return "\n".join(lines)

    def assert_passed(self) -> BackwardReport:
        """Return the report when it passed; raise :class:`AssertionError` with it otherwise."""
        if not self.passed:
            raise AssertionError(str(self))
        return self


def check_backward(
    name: str,
    forward: Callable[..., Tensor],
    backward: Callable[..., Any],
    inputs: Mapping[str, Any] | Sequence[Any] | Tensor,
    *,
    wrt: Sequence[int | str] | None = None,
    grad_output: Tensor | None = None,
    numerical: bool = True,
    h: float = 1e-6,
    rtol: float | None = None,
    atol: float | None = None,
    numerical_rtol: float = 1e-5,
    numerical_atol: float = 1e-6,
    seed: int = 0,
) -> BackwardReport:
    r"""Check a hand-written ``backward`` against autograd and against finite differences.

    ``forward(*inputs)`` returns a tensor :math:`y`; ``backward(grad_output, *inputs)``
    must return :math:`\bar x_k = \sum_i \bar y_i\, \partial y_i/\partial x_k` for each
    checked input (the book's convention: ``grad_output`` first, then the forward's
    inputs). It may return one tensor (when one input is checked), one gradient per
    input (``None`` for those not checked), or one per checked input in order.

    ``grad_output`` :math:`\bar y` defaults to 1 for a scalar output and to a seeded
    standard normal tensor otherwise, so a backward that ignores the upstream gradient
    is caught. The references are the gradients of the scalar :math:`\sum_i \bar y_i
    y_i`: autograd's (in the inputs' dtype) and, when ``numerical``, central
    differences with step ``h`` in float64, which cost two forwards per input element:
    keep the inputs small. ``inputs`` is a tensor, a sequence or a name-to-value
    mapping (its names label the report); by default every floating-point tensor input is checked,
    ``wrt`` picks some by position or name.

    ``rtol``/``atol`` apply to the autograd comparison (dtype defaults as in
    :func:`compare`), ``numerical_rtol``/``numerical_atol`` to the finite-difference
    one. The backward's exceptions are caught and reported; the forward's are not.

    Examples:
        >>> x = torch.tensor([1.0, -2.0, 3.0])
        >>> print(check_backward("square", lambda x: x ** 2, lambda g, x: 2 * g * x, x))
        square: PASSED
          d/d input: ok
            shape (3,) matches
            ✓ exact        max diff 0         vs autograd
            ✓ exact        max diff 0         vs numerical
            max rel diff 0.00e+00
    """
    names, values = _named_inputs(inputs)
    checked = _checked_positions(names, values, wrt)
    output = forward(*values)
    if not isinstance(output, Tensor):
        raise TypeError(f"check_backward({name!r}): forward must return a tensor; got {output!r}")
    grad_output = _default_grad_output(output, seed) if grad_output is None else grad_output.detach()
    try:
        ours = _match_returned(backward(grad_output, *values), len(values), checked)
    except Exception as exc:  # a buggy backward is what this function is for
        message = f"{type(exc).__name__}: {exc}"
        return BackwardReport(name, (), error=message,
                              error_hints=gradient_hints.error_hints(message))
    references = _autograd_references(forward, values, checked, grad_output)
    numericals = (_numerical_references(forward, values, checked, grad_output, h)
                  if numerical else [None] * len(checked))
    tolerances = _Tolerances(rtol, atol, numerical_rtol, numerical_atol)
    return BackwardReport(name, tuple(
        _check_one(f"d/d {names[pos]}", g, (ref, num), tolerances)
        for pos, g, ref, num in zip(checked, ours, references, numericals, strict=True)
    ))


def _default_grad_output(output: Tensor, seed: int) -> Tensor:
    """1 for a scalar output, else a seeded standard normal tensor like ``output``."""
    if output.dim() == 0:
        return torch.ones_like(output).detach()
    gen = torch.Generator().manual_seed(seed)
    grad_output = torch.randn(output.shape, generator=gen, dtype=torch.float64)
    return grad_output.to(dtype=output.dtype, device=output.device)


@dataclass(frozen=True)
class _Tolerances:
    """The tolerances against autograd (None: the dtype's) and against finite differences."""

    rtol: float | None
    atol: float | None
    numerical_rtol: float
    numerical_atol: float


def _named_inputs(
    inputs: Mapping[str, Any] | Sequence[Any] | Tensor,
) -> tuple[list[str], list[Any]]:
    if isinstance(inputs, Tensor):
        return ["input"], [inputs]
    if isinstance(inputs, Mapping):
        return [str(k) for k in inputs], list(inputs.values())
    values = list(inputs)
    if len(values) == 1:
        return ["input"], values
    return [f"input {i}" for i in range(len(values))], values


def _checked_positions(
    names: list[str], values: list[Any], wrt: Sequence[int | str] | None
) -> list[int]:
    if wrt is None:
        checked = [
            i for i, v in enumerate(values) if isinstance(v, Tensor) and v.is_floating_point()
        ]
        if not checked:
            raise ValueError("check_backward: inputs hold no floating-point tensor to check")
        return checked
    positions = []
    for item in wrt:
        pos = names.index(item) if isinstance(item, str) else item
        if not (isinstance(values[pos], Tensor) and values[pos].is_floating_point()):
            raise ValueError(
                f"check_backward: wrt names {item!r}, which is not a floating-point tensor"
            )
        positions.append(pos)
    return positions


def _match_returned(returned: Any, n_inputs: int, checked: list[int]) -> list[Tensor]:
    """One gradient per checked input, from whatever layout the backward returned."""
    if isinstance(returned, Tensor):
        if len(checked) != 1:
            raise TypeError(
                f"backward returned one tensor but {len(checked)} inputs are checked; "
                "return a tuple with one gradient per input"
            )
        return [returned]
    if not isinstance(returned, (tuple, list)):
        raise TypeError(f"backward must return a tensor or a tuple of tensors; got {returned!r}")
    if len(returned) == n_inputs:
        picked = [returned[pos] for pos in checked]
    elif len(returned) == len(checked):
        picked = list(returned)
    else:
        raise TypeError(
            f"backward returned {len(returned)} gradients; expected {n_inputs} "
            f"(one per input) or {len(checked)} (one per checked input)"
        )
    for g in picked:
        if not isinstance(g, Tensor):
            raise TypeError(f"backward returned {g!r} where a gradient tensor belongs")
    return picked


def _autograd_references(
    forward: Callable[..., Tensor], values: list[Any], checked: list[int], grad_output: Tensor
) -> list[Tensor]:
    leaves = list(values)
    for pos in checked:
        leaves[pos] = values[pos].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        output = forward(*leaves)
        grads = torch.autograd.grad(
            output, [leaves[pos] for pos in checked], grad_output.to(output.dtype),
            allow_unused=True,
        )
    return [
        torch.zeros_like(values[pos]) if g is None else g.detach()
        for pos, g in zip(checked, grads, strict=True)
    ]


def _numerical_references(
    forward: Callable[..., Tensor], values: list[Any], checked: list[int],
    grad_output: Tensor, h: float,
) -> list[Tensor]:
    as64 = [
        v.detach().to(torch.float64) if isinstance(v, Tensor) and v.is_floating_point() else v
        for v in values
    ]
    g64 = grad_output.to(torch.float64)
    result = []
    with torch.no_grad():
        for pos in checked:
            def scalar(x: Tensor, pos: int = pos) -> Tensor:
                args = list(as64)
                args[pos] = x
                return (forward(*args).to(torch.float64) * g64).sum()

            result.append(numerical_gradient(scalar, as64[pos], h=h))
    return result


def _check_one(name: str, ours: Tensor, references: tuple[Tensor, Tensor | None],
               tol: _Tolerances) -> GradientCheck:
    """Compare one gradient with autograd's and (if computed) the numerical one."""
    (reference, numerical), ours = references, ours.detach()
    shape, ref_shape = tuple(ours.shape), tuple(reference.shape)
    if shape != ref_shape:
        return GradientCheck(name, shape, ref_shape, None, None, math.inf, None,
                             tuple(gradient_hints.shape_hints(ours, reference)), ours, reference)
    vs_autograd = compare("vs autograd", ours, reference, tol.rtol, tol.atol)
    vs_numerical = None if numerical is None else compare(
        "vs numerical", ours, numerical.to(ours.dtype), tol.numerical_rtol, tol.numerical_atol)
    a, b = ours.to(torch.float64), reference.to(torch.float64)
    floor = default_tolerances(ours.dtype)[1] if tol.atol is None else tol.atol
    max_rel, worst = _worst_entry(a, b, floor)
    hints: list[str] = []
    if not vs_autograd.close:
        hints = gradient_hints.value_hints(a, b, floor)
    elif vs_numerical is not None and not vs_numerical.close:
        hints = ["ours matches autograd but not finite differences: the forward itself may be "
                 "wrong, not smooth at this point (a max, a kink, ties), or h badly scaled"]
    if numerical is not None and not bool(torch.allclose(
        b, numerical, rtol=tol.numerical_rtol, atol=tol.numerical_atol, equal_nan=True
    )) and torch.isfinite(b).all():
        hints.append("autograd and finite differences disagree with each other: the forward is not "
                     "smooth here or h is badly scaled, so neither reference is trustworthy")
    return GradientCheck(name, shape, ref_shape, vs_autograd, vs_numerical, max_rel, worst,
                         tuple(hints), ours, reference)


def _worst_entry(a: Tensor, b: Tensor, floor: float
                 ) -> tuple[float, tuple[tuple[int, ...], float, float] | None]:
    r""":math:`\max_k |a_k - b_k| / \max(|b_k|, \text{floor})` and ``(index, a, b)`` where it peaks."""
    diff = (a - b).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    rel = diff / b.abs().clamp_min(floor)
    max_rel = float(rel.max()) if rel.numel() else 0.0
    if not diff.numel():
        return max_rel, None
    flat = int(diff.reshape(-1).argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    return max_rel, (index, float(a[index]), float(b[index]))
