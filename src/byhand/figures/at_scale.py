"""Figures of the part "At scale": one function per figure."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

# ------------------------------------------------------------------------- chapter 11


def plot_step_for_step(drift: Mapping[str, Tensor]) -> Figure:
    r"""How far two-process training drifts from one-process training, step by step.

    ``drift`` maps a label (e.g. a dtype) to :math:`\max_k |\theta^{(P)}_k - \theta^{(1)}_k|`
    after each step (entry 0: before the first step). Zeros are drawn at the bottom of
    the logarithmic axis, labelled "equal".
    """
    if not drift:
        raise ValueError("plot_step_for_step: drift must hold at least one curve")
    fig, ax = plt.subplots(figsize=(5.2, 3.4), constrained_layout=True)
    positive = torch.cat([d[d > 0] for d in drift.values()])
    floor = float(positive.min()) / 10 if positive.numel() else 1e-20
    markers = ["o", "s", "D", "^"]
    for i, (label, values) in enumerate(drift.items()):
        values = values.to(torch.float64).clamp(min=floor)
        ax.semilogy(range(len(values)), values.numpy(), marker=markers[i % len(markers)],
                    markersize=4, label=label)
    ax.axhline(floor, color="0.6", linewidth=0.8, linestyle=":")
    ax.text(0.0, floor * 1.6, "equal", color="0.4", fontsize=10)
    ax.set_xlabel("SGD step")
    ax.set_ylabel(r"$\max_k\,|\theta^{(2)}_k - \theta^{(1)}_k|$")
    ax.legend(loc="center right")  # between the curves, which lie far apart
    return fig


def plot_parallel_efficiency(rows: Tensor, efficiency: Mapping[str, Tensor]) -> Figure:
    r"""Parallel efficiency :math:`T_c/(T_c + T_{ar})` against the rows each process computes.

    ``rows`` is the per-process batch :math:`b` (log axis); ``efficiency`` maps a
    setting to its efficiency at each :math:`b`. A dotted line marks 1/2, where the
    all-reduce takes as long as the computation.
    """
    if not efficiency:
        raise ValueError("plot_parallel_efficiency: efficiency must hold at least one curve")
    fig, ax = plt.subplots(figsize=(5.2, 4.0), constrained_layout=True)
    styles = ["-", "--", "-.", ":"]
    for i, (label, values) in enumerate(efficiency.items()):
        if values.shape != rows.shape:
            raise ValueError(f"plot_parallel_efficiency: {label!r} has shape "
                             f"{tuple(values.shape)}; expected {tuple(rows.shape)}")
        ax.semilogx(rows.numpy(), values.numpy(), linestyle=styles[i % len(styles)], label=label)
    ax.axhline(0.5, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("rows per process and step, $b$")
    ax.set_ylabel("efficiency $T_c / (T_c + T_{ar})$")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    return fig
