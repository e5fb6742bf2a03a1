"""Figures of the appendix "Half precision": one function per figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .style import phone_legible


def plot_fp16_limits(
    n: Tensor, numerator: Tensor, denominator: Tensor, zero_fraction: dict[str, Tensor],
    n_loss_inf: int, n_grad_zero: int,
) -> Figure:
    r"""Where a float16 mean cross-entropy breaks, against the batch size :math:`N`.

    Top: the two numbers the ``mean`` must hold, :math:`\sum_n L_n` and
    :math:`D = \sum_n w_{y_n}`, against float16's largest finite value 65,504, with
    the measured first :math:`N` at which the loss is no longer finite
    (``n_loss_inf``) and at which every gradient entry is exactly zero
    (``n_grad_zero``). Bottom: the fraction of gradient entries that are exactly zero,
    one curve per entry of ``zero_fraction``. The panels are stacked and share the
    :math:`N` axis; one legend below them names every line.
    """
    k = n.numel()
    if numerator.numel() != k or denominator.numel() != k or any(
        f.numel() != k for f in zero_fraction.values()
    ):
        raise ValueError(
            "plot_fp16_limits: numerator, denominator and every zero_fraction curve "
            f"need one value per batch size ({k})"
        )
    fp16_max = float(torch.finfo(torch.float16).max)
    nn_ = n.detach().cpu().double().numpy()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.6, 9.0), layout="constrained",
                                      sharex=True)
    top.plot(nn_, numerator.detach().cpu().double().numpy(), marker="o", markersize=3,
             label=r"summed loss $\sum_n L_n$")
    top.plot(nn_, denominator.detach().cpu().double().numpy(), marker="s", markersize=3,
             label=r"denominator $D$, the sum of the weights")
    top.axhline(fp16_max, color="black", linestyle=":", label=f"float16 max ({fp16_max:,.0f})")
    top.set_xscale("log", base=2)
    top.set_yscale("log")
    top.set_ylabel("value (exact)")
    top.set_title("What the float16 mean has to hold")
    for ax in (top, bottom):
        ax.axvline(n_loss_inf, color="tab:orange", linestyle="--",
                   label=f"loss inf from N = {n_loss_inf:,}")
        ax.axvline(n_grad_zero, color="tab:red", linestyle="--",
                   label=f"loss NaN, gradient 0 from N = {n_grad_zero:,}")
    for (label, frac), marker in zip(zero_fraction.items(), "o^sdv", strict=False):
        bottom.plot(nn_, frac.detach().cpu().double().numpy(), marker=marker, markersize=4,
                    label=label)
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_xlabel("batch size $N$")
    bottom.set_ylabel("fraction of entries = 0")
    bottom.set_title("What the float16 gradient looks like")
    handles: dict[str, object] = {}
    for ax in (top, bottom):
        for line in ax.get_lines():
            handles.setdefault(line.get_label(), line)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=1)
    return phone_legible(fig)
