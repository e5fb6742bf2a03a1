r"""Hints about the kind of bug behind a wrong hand-written gradient.

Given ours :math:`a` and the reference :math:`b` (same shape), simple patterns name
the classic manual-backward bugs: a constant ratio :math:`a_k / b_k = c` (a missing
scale factor, a flipped sign), a ratio constant within each row (a missing per-sample
factor), :math:`a = b^\top` (operands of a matmul in the wrong order), rows of zeros
(a mask that drops samples), NaN or inf (an overflow), and sums
:math:`\sum_i b_{i\ldots}` that vanish in the reference but not in ours (a
normalisation over the wrong dimension). :func:`byhand.check.check_backward` attaches
them to its report.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["error_hints", "shape_hints", "value_hints"]


def shape_hints(ours: Tensor, reference: Tensor) -> list[str]:
    """Why a gradient may have come out in the wrong shape.

    Examples:
        >>> shape_hints(torch.ones(2, 3), torch.ones(3, 2))[0].split(":")[0]
        'ours transposed equals the reference'
    """
    if (ours.dim() >= 2 and tuple(ours.mT.shape) == tuple(reference.shape)
            and bool(torch.allclose(ours.mT.to(torch.float64), reference.to(torch.float64)))):
        return ["ours transposed equals the reference: a matmul with its operands in the wrong "
                "order (xᵀδ where δᵀx belongs, W where Wᵀ belongs)?"]
    if ours.numel() == reference.numel():
        return ["same number of entries in another shape: a transpose, reshape or view?"]
    return ["the shapes differ: a reduction over the wrong dimension, a lost keepdim, or "
            "broadcasting that grew the result?"]


def error_hints(message: str) -> tuple[str, ...]:
    """Why a backward may have raised ``message``.

    Examples:
        >>> error_hints("mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)")[0][:20]
        'a size mismatch: a r'
    """
    if "must match the size" in message or "cannot be multiplied" in message:
        return ("a size mismatch: a reduction that lost its dimension (keepdim=True?) or a "
                "matmul with its operands in the wrong order?",)
    return ()


def value_hints(a: Tensor, b: Tensor, floor: float) -> list[str]:
    """Honest, simple patterns in ``a`` (ours) against ``b`` (the reference), same shape.

    ``floor`` is the absolute tolerance below which an entry counts as zero.

    Examples:
        >>> value_hints(-torch.ones(3), torch.ones(3), 1e-5)
        ['ours = -reference: the sign is flipped (a minus lost, or ascent for descent?)']
    """
    if not bool(torch.isfinite(b).all()):
        return ["the reference itself is not finite: the forward overflows at these inputs, "
                "so nothing can be concluded here"]
    if not bool(torch.isfinite(a).all()):
        n_nan, n_inf = int(torch.isnan(a).sum()), int(torch.isinf(a).sum())
        return [f"ours has {n_nan} NaN and {n_inf} inf entries where the reference is finite: an "
                "overflow (exp of a large value without subtracting the max?) or a 0/0"]
    scale = float(b.abs().max()) if b.numel() else 0.0
    tol = max(floor, 1e-6 * scale)
    if not bool((a.abs() > tol).any()):
        return ["ours is zero everywhere: the gradient never reaches this input?"]
    hints = _structure_hints(a, b, tol)
    if not hints:
        hints = _sum_hints(a, b, tol) or _sign_hints(a, b, tol)
    return hints or ["no simple pattern: inspect the worst entry and work a tiny case by hand"]


def _structure_hints(a: Tensor, b: Tensor, tol: float) -> list[str]:
    """Zero rows, a transpose hidden by a square shape, and ratios that are constant."""
    hints = []
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
    return hints


def _sign_hints(a: Tensor, b: Tensor, tol: float) -> list[str]:
    """Signs that agree everywhere although the sizes do not."""
    signif = b.abs() > tol
    if not bool((torch.sign(a[signif]) == torch.sign(b[signif])).all()):
        return []
    r = a[signif] / b[signif]
    return [f"the signs agree everywhere but the ratio ours/reference ranges from "
            f"{float(r.min()):.3g} to {float(r.max()):.3g}: the structure is right and a "
            "quantity inside it is wrong?"]


def _is_constant(r: Tensor) -> bool:
    """All entries of ``r`` equal, to a relative 1e-6."""
    return r.numel() > 0 and float(r.max() - r.min()) <= 1e-6 * max(1.0, float(r.abs().max()))


def _ratio_hint(a: Tensor, b: Tensor, tol: float) -> str | None:
    """A ratio :math:`a_k / b_k` constant everywhere, or within each row."""
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
    """Sums along a dimension that vanish in the reference but not in ours."""
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
