r"""Compare a hand-derived gradient with a reference, and estimate gradients numerically.

:func:`compare` reports three things about ``ours`` against ``reference``: whether
they are bit-for-bit equal, whether they agree to floating-point tolerance
(:func:`torch.allclose`), and the largest absolute difference
:math:`\max_k |a_k - b_k|`. :func:`numerical_gradient` estimates
:math:`\partial f/\partial x_k \approx (f(x + h e_k) - f(x - h e_k)) / 2h` by central
differences, the reference that needs neither autograd nor our algebra.

:func:`check_backward` puts the three together for a hand-written backward: it
compares the gradients it returns with autograd's and with central differences, and
returns a :class:`BackwardReport` whose ``str()`` is a readable multi-line verdict
with the worst entry and simple hints about the kind of bug (a constant ratio, a
transpose, zero rows, NaN or inf, sums that should vanish).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "BackwardReport",
    "Comparison",
    "GradientCheck",
    "assert_close",
    "autograd_gradient",
    "check_backward",
    "compare",
    "numerical_gradient",
]


@dataclass(frozen=True)
class Comparison:
    """The verdict of :func:`compare`; ``str()`` gives a one-line report.

    Examples:
        >>> result = compare("d/dx", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
        >>> result.exact, result.close, result.max_abs_diff
        (True, True, 0.0)
    """

    name: str
    exact: bool
    close: bool
    max_abs_diff: float

    def __str__(self) -> str:
        return (
            f"{self.name:<18} | exact: {self.exact!s:<5} | "
            f"approximate: {self.close!s:<5} | max diff: {self.max_abs_diff:.2e}"
        )


def compare(
    name: str, ours: Tensor, reference: Tensor, rtol: float | None = None, atol: float | None = None
) -> Comparison:
    """Compare ``ours`` with ``reference`` (same shape) and return the three-part verdict.

    Tolerances default to those of :func:`torch.testing.assert_close` for the dtype.

    Examples:
        >>> print(compare("d/dx", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5])))
        d/dx               | exact: False | approximate: False | max diff: 5.00e-01
        >>> print(compare("d/dx", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])))
        d/dx               | exact: True  | approximate: True  | max diff: 0.00e+00
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
    """Like :func:`compare`, but raise :class:`AssertionError` with the report when not close.

    Examples:
        >>> assert_close("d/dx", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        AssertionError: gradient mismatch: d/dx ... | approximate: False | max diff: 5.00e-01
        >>> assert_close("d/dx", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])).close
        True
    """
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


# ------------------------------------------------------------ checking a whole backward


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
        verdict = "ok" if self.passed else "WRONG"
        lines = [f"  {self.name}: {verdict}"]
        if self.shape == self.reference_shape:
            lines.append(f"    {'shape':<18} | {self.shape} matches")
        else:
            lines.append(
                f"    {'shape':<18} | ours {self.shape}, reference {self.reference_shape}"
            )
        for comparison in (self.vs_autograd, self.vs_numerical):
            if comparison is not None:
                lines.append(f"    {comparison}")
        if self.vs_autograd is not None:
            lines.append(f"    {'max rel diff':<18} | {self.max_rel_diff:.2e}")
        if self.worst is not None and not self.passed:
            index, ours, ref = self.worst
            lines.append(
                f"    {'worst entry':<18} | {list(index)}: ours {ours:.6g}, reference {ref:.6g}"
            )
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
            shape              | (3,) matches
            vs autograd        | exact: True  | approximate: True  | max diff: 0.00e+00
            vs numerical       | exact: True  | approximate: True  | max diff: 0.00e+00
            max rel diff       | 0.00e+00
    """
    names, values = _named_inputs(inputs)
    checked = _checked_positions(names, values, wrt)
    output = forward(*values)
    if not isinstance(output, Tensor):
        raise TypeError(f"check_backward({name!r}): forward must return a tensor; got {output!r}")
    if grad_output is None:
        if output.dim() == 0:
            grad_output = torch.ones_like(output)
        else:
            gen = torch.Generator().manual_seed(seed)
            grad_output = torch.randn(output.shape, generator=gen, dtype=torch.float64)
            grad_output = grad_output.to(dtype=output.dtype, device=output.device)
    grad_output = grad_output.detach()

    try:
        returned = backward(grad_output, *values)
        ours = _match_returned(returned, len(values), checked)
    except Exception as exc:  # a buggy backward is what this function is for
        message = f"{type(exc).__name__}: {exc}"
        return BackwardReport(name, (), error=message, error_hints=_error_hints(message))

    references = _autograd_references(forward, values, checked, grad_output)
    numericals = (
        _numerical_references(forward, values, checked, grad_output, h)
        if numerical else [None] * len(checked)
    )
    gradients = tuple(
        _check_one(
            f"d/d {names[pos]}", g, ref, num, rtol, atol, numerical_rtol, numerical_atol
        )
        for pos, g, ref, num in zip(checked, ours, references, numericals, strict=True)
    )
    return BackwardReport(name, gradients)


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


def _check_one(
    name: str, ours: Tensor, reference: Tensor, numerical: Tensor | None,
    rtol: float | None, atol: float | None, numerical_rtol: float, numerical_atol: float,
) -> GradientCheck:
    ours = ours.detach()
    shape, ref_shape = tuple(ours.shape), tuple(reference.shape)
    if shape != ref_shape:
        return GradientCheck(name, shape, ref_shape, None, None, math.inf, None,
                             tuple(_shape_hints(ours, reference)), ours, reference)
    vs_autograd = compare("vs autograd", ours, reference, rtol, atol)
    vs_numerical = None
    if numerical is not None:
        vs_numerical = compare(
            "vs numerical", ours, numerical.to(ours.dtype), numerical_rtol, numerical_atol
        )
    a = ours.to(torch.float64)
    b = reference.to(torch.float64)
    floor = _default_tolerances(ours.dtype)[1] if atol is None else atol
    diff = (a - b).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    rel = diff / b.abs().clamp_min(floor)
    max_rel = float(rel.max()) if rel.numel() else 0.0
    worst = None
    if diff.numel():
        flat = int(diff.reshape(-1).argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
        worst = (index, float(a[index]), float(b[index]))
    hints: list[str] = []
    if not vs_autograd.close:
        hints = _value_hints(a, b, floor)
    elif vs_numerical is not None and not vs_numerical.close:
        hints = [
            "ours matches autograd but not finite differences: the forward itself may be "
            "wrong, not smooth at this point (a max, a kink, ties), or h badly scaled"
        ]
    if numerical is not None and not bool(
        torch.allclose(b, numerical, rtol=numerical_rtol, atol=numerical_atol, equal_nan=True)
    ) and torch.isfinite(b).all():
        hints.append(
            "autograd and finite differences disagree with each other: the forward is not "
            "smooth here or h is badly scaled, so neither reference is trustworthy"
        )
    return GradientCheck(name, shape, ref_shape, vs_autograd, vs_numerical, max_rel, worst,
                         tuple(hints), ours, reference)


def _shape_hints(ours: Tensor, reference: Tensor) -> list[str]:
    if (ours.dim() >= 2 and tuple(ours.mT.shape) == tuple(reference.shape)
            and bool(torch.allclose(ours.mT.to(torch.float64), reference.to(torch.float64)))):
        return ["ours transposed equals the reference: a matmul with its operands in the wrong "
                "order (xᵀδ where δᵀx belongs, W where Wᵀ belongs)?"]
    if ours.numel() == reference.numel():
        return ["same number of entries in another shape: a transpose, reshape or view?"]
    return ["the shapes differ: a reduction over the wrong dimension, a lost keepdim, or "
            "broadcasting that grew the result?"]


def _error_hints(message: str) -> tuple[str, ...]:
    if "must match the size" in message or "cannot be multiplied" in message:
        return ("a size mismatch: a reduction that lost its dimension (keepdim=True?) or a "
                "matmul with its operands in the wrong order?",)
    return ()


def _value_hints(a: Tensor, b: Tensor, floor: float) -> list[str]:
    """Honest, simple patterns in ``a`` (ours) against ``b`` (the reference), same shape."""
    hints: list[str] = []
    finite_b = torch.isfinite(b)
    if not bool(finite_b.all()):
        return ["the reference itself is not finite: the forward overflows at these inputs, "
                "so nothing can be concluded here"]
    bad = ~torch.isfinite(a)
    if bool(bad.any()):
        n_nan, n_inf = int(torch.isnan(a).sum()), int(torch.isinf(a).sum())
        hints.append(
            f"ours has {n_nan} NaN and {n_inf} inf entries where the reference is finite: an "
            "overflow (exp of a large value without subtracting the max?) or a 0/0"
        )
        return hints
    scale = float(b.abs().max()) if b.numel() else 0.0
    tol = max(floor, 1e-6 * scale)
    if not bool((a.abs() > tol).any()):
        return ["ours is zero everywhere: the gradient never reaches this input?"]
    if a.dim() >= 1 and a.shape[0] > 1:
        a_rows = a.reshape(a.shape[0], -1)
        b_rows = b.reshape(b.shape[0], -1)
        zero = ((a_rows.abs() <= tol).all(1) & (b_rows.abs() > tol).any(1)).nonzero().flatten()
        if zero.numel():
            hints.append(
                f"rows {zero.tolist()} of ours are zero where the reference's are not: a mask "
                "or an index that drops these samples?"
            )
    if a.dim() >= 2 and a.shape[-1] == a.shape[-2] and bool(
        torch.allclose(a.mT, b, rtol=1e-6, atol=tol)
    ):
        hints.append("ours transposed equals the reference: W where Wᵀ belongs (or xᵀδ "
                     "where δᵀx belongs)? A square shape let it through")
    ratio_hint = _ratio_hint(a, b, tol)
    if ratio_hint:
        hints.append(ratio_hint)
    if not hints:
        hints.extend(_sum_hints(a, b, tol))
    if not hints:
        signif = b.abs() > tol
        if bool((torch.sign(a[signif]) == torch.sign(b[signif])).all()):
            r = a[signif] / b[signif]
            hints.append(
                f"the signs agree everywhere but the ratio ours/reference ranges from "
                f"{float(r.min()):.3g} to {float(r.max()):.3g}: the structure is right and a "
                "quantity inside it is wrong?"
            )
    if not hints:
        hints.append("no simple pattern: inspect the worst entry and work a tiny case by hand")
    return hints


def _is_constant(r: Tensor) -> bool:
    return r.numel() > 0 and float(r.max() - r.min()) <= 1e-6 * max(1.0, float(r.abs().max()))


def _ratio_hint(a: Tensor, b: Tensor, tol: float) -> str | None:
    signif = b.abs() > tol
    # entries where the reference is ~0 must be ~0 in ours too for a ratio to explain them
    if not bool(signif.any()) or bool((a[~signif].abs() > 10 * tol).any()):
        return None
    r = torch.where(signif, a / torch.where(signif, b, torch.ones_like(b)), torch.nan)
    flat = r[signif]
    if _is_constant(flat):
        c = float(flat.mean())
        if abs(c + 1) < 1e-6:
            return "ours = -reference: the sign is flipped (a minus lost, or ascent for descent?)"
        text = (f"ours / reference is the constant {c:.6g} everywhere: a missing or extra "
                "scale factor")
        k, inv = round(c), round(1 / c) if c != 0 else 0
        if abs(k) >= 2 and abs(c - k) < 1e-6 * abs(c):
            text += f" (an integer, {k}, is often a count: a missing division by the batch size?)"
        elif abs(inv) >= 2 and abs(1 / c - inv) < 1e-6 * abs(1 / c):
            text += f" (1/{inv}: a division done twice, or by the wrong count?)"
        return text
    if a.dim() >= 2:
        rows = r.reshape(r.shape[0], -1)
        per_row = []
        for row in rows:
            vals = row[~torch.isnan(row)]
            if vals.numel() == 0:
                continue
            if not _is_constant(vals):
                return None
            per_row.append(float(vals.mean()))
        if len(per_row) > 1:
            return (
                "ours / reference is constant within each row but changes from row to row "
                f"({min(per_row):.3g} to {max(per_row):.3g}): a per-sample factor is missing "
                "or wrong (the upstream gradient grad_output? a per-sample weight?)"
            )
    return None


def _sum_hints(a: Tensor, b: Tensor, tol: float) -> list[str]:
    hints = []
    n = max(a.shape) if a.dim() else 1
    for d in range(a.dim() if a.dim() >= 2 else 0):
        sb, sa = b.sum(d), a.sum(d)
        if bool((sb.abs() <= n * tol).all()) and not bool((sa.abs() <= n * tol).all()):
            hints.append(
                f"the reference sums to zero along dim {d} but ours does not (largest sum "
                f"{float(sa.abs().max()):.3g}): a normalisation over the wrong dimension, or "
                "a reduction that lost keepdim and broadcast the wrong way?"
            )
    return hints
