"""Hypothesis strategies that draw whole cross-entropy problems, options included."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st


@dataclass
class Problem:
    """One call of ``F.cross_entropy``: tensors plus every keyword option."""

    input: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor | None
    ignore_index: int
    reduction: str
    label_smoothing: float
    grad_output: torch.Tensor | None = None

    def kwargs(self) -> dict:
        return {"weight": self.weight, "ignore_index": self.ignore_index,
                "reduction": self.reduction, "label_smoothing": self.label_smoothing}


def outcome(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """``(value, None)`` when ``call`` returns, ``(None, error)`` when it raises."""
    try:
        return call(), None
    except Exception as error:  # recording whatever is raised is the point
        return None, error


def strided(t: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous layout (every other element of a buffer twice as long)."""
    return torch.stack([t, torch.zeros_like(t)], dim=-1)[..., 0]


@st.composite
def problems(draw, prob_targets: bool | None = None, smoothing: bool = True,
             dtype: torch.dtype | None = None, scale: float = 4.0,
             max_spatial: int = 2, noncontiguous: bool = False) -> Problem:
    """Draw shapes (unbatched, (N, C) or (N, C, d1, ..., dK)), values and options.

    ``max_spatial`` bounds K; ``noncontiguous`` hands input, target and weight over in
    a non-contiguous layout (same values).
    """
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    dtype = dtype or draw(st.sampled_from([torch.float32, torch.float64]))
    n_classes = draw(st.integers(1, 7))
    unbatched = draw(st.booleans()) and draw(st.booleans())
    spatial = () if unbatched else tuple(draw(st.lists(st.integers(1, 3), max_size=max_spatial)))
    batch = () if unbatched else (draw(st.integers(1, 5)),)
    shape = (*batch, n_classes, *spatial)
    x = torch.randn(shape, generator=gen, dtype=dtype) * scale
    prob = draw(st.booleans()) if prob_targets is None else prob_targets
    class_dim = 0 if unbatched else 1
    if prob:
        target = torch.rand(shape, generator=gen, dtype=dtype).softmax(class_dim)
        ignore_index = draw(st.sampled_from([-100, -1]))
    else:
        target = torch.randint(0, n_classes, (*batch, *spatial), generator=gen)
        ignore_index = draw(st.sampled_from([-100, 0, n_classes - 1]))
        if draw(st.booleans()):
            ignore_index = -100
            target = torch.where(torch.rand(target.shape, generator=gen) < 0.3,
                                 torch.full_like(target, -100), target)
    weight = None
    if draw(st.booleans()):
        weight = torch.rand(n_classes, generator=gen, dtype=dtype) * 2 + 0.1
    label_smoothing = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0])) if smoothing else 0.0
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    loss_shape = (*batch, *spatial) if reduction == "none" else ()
    grad_output = torch.randn(loss_shape, generator=gen, dtype=dtype)
    if noncontiguous:
        x, target = strided(x), strided(target)
        weight = None if weight is None else strided(weight)
    return Problem(x, target, weight, ignore_index, reduction, label_smoothing, grad_output)
