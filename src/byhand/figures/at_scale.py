"""Figures of the part "At scale" (chapters 10 to 12): one function per figure."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .style import phone_legible

__all__ = [
    "plot_allocation_timelines",
    "plot_online_trace",
    "plot_parallel_efficiency",
    "plot_scaling",
    "plot_step_for_step",
]

MIB = 2**20
STYLES = {  # one look per contestant, in every figure of the chapter
    "naive": {"color": "tab:red", "marker": "o", "linestyle": "-"},
    "byhand": {"color": "tab:blue", "marker": "s", "linestyle": "-"},
    "torch": {"color": "tab:green", "marker": "^", "linestyle": "--"},
}


def _style(name: str) -> dict[str, str]:
    for key, style in STYLES.items():
        if name.startswith(key):
            return style
    return {"color": "tab:gray", "marker": "x", "linestyle": ":"}


def plot_scaling(
    sweeps: Sequence[Mapping[str, object]], legend_names: Mapping[str, str] | None = None,
) -> Figure:
    """Peak extra memory (above) and time (below) of each contestant, for each sweep.

    Each sweep holds ``x`` (the sizes along the sweep), ``xlabel``, ``peak_bytes`` and
    ``seconds`` (contestant name to one value per size), and optionally ``name``, the
    short name of what grows, for the titles (default: ``xlabel``). Both axes are logarithmic, so
    a quantity proportional to the size is a straight line of slope 1. The legend sits
    above the panels; ``legend_names`` maps a contestant to its label.
    """
    if not sweeps:
        raise ValueError("plot_scaling: sweeps must hold at least one sweep; got none")
    names = legend_names or {}
    # Memory above time for each sweep, one panel a row: side by side, the log axes'
    # labels leave too little room for type a phone can read.
    fig, flat = plt.subplots(2 * len(sweeps), 1, figsize=(5.6, 5.6 * len(sweeps) + 0.8),
                             squeeze=False, layout="constrained")
    axes = flat.reshape(len(sweeps), 2)
    for row, sweep in zip(axes, sweeps, strict=True):
        x = list(sweep["x"])
        for ax, key, scale, ylabel in ((row[0], "peak_bytes", MIB, "peak extra memory (MiB)"),
                                       (row[1], "seconds", 1.0, "time per call (s)")):
            for name, values in sweep[key].items():
                if len(values) != len(x):
                    raise ValueError(f"plot_scaling: {key}[{name!r}] must hold {len(x)} values; "
                                     f"got {len(values)}")
                ax.plot(x, [v / scale for v in values], label=names.get(name, name),
                        **_style(name))
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(str(sweep["xlabel"]))
            ax.set_ylabel(ylabel)
            what = "Memory" if key == "peak_bytes" else "Time"
            ax.set_title(f"{what} as {sweep.get('name', sweep['xlabel'])} grows")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=1,
               frameon=False)
    return phone_legible(fig)


def plot_allocation_timelines(
    timelines: Mapping[str, tuple[Sequence[float], Sequence[int]]],
    reference_bytes: float | None = None, reference_label: str = "",
) -> Figure:
    """Bytes held by PyTorch's allocator during one call, against the time in the call.

    ``timelines`` maps a contestant to its (seconds, bytes) steps, as returned by
    :func:`byhand.memory.allocation_timeline`; time is scaled to the fraction of each
    call, so calls of different lengths share the axis. A horizontal line marks
    ``reference_bytes`` (for instance the size of the logits), labelled on the line.
    """
    if not timelines:
        raise ValueError("plot_allocation_timelines: timelines must hold at least one call")
    fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
    for name, (seconds, held) in timelines.items():
        end = max(seconds[-1], 1e-12) if seconds else 1.0
        ax.step([t / end for t in seconds], [h / MIB for h in held], where="post",
                label=name, color=_style(name)["color"], linestyle=_style(name)["linestyle"])
    if reference_bytes is not None:
        ax.axhline(reference_bytes / MIB, color="0.4", linewidth=1, linestyle=":")
        ax.annotate(reference_label, (0.01, reference_bytes / MIB), xytext=(0, 3),
                    textcoords="offset points", color="0.3", fontsize=10, va="bottom")
    ax.set_xlabel("fraction of the call (forward, then backward)")
    ax.set_ylabel("memory held (MiB)")
    ax.set_title("What the allocator holds during one forward + backward")
    fig.legend(loc="outside upper center", ncol=min(3, len(timelines)), frameon=False)
    return phone_legible(fig)


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
    return phone_legible(fig)


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
    return phone_legible(fig)


# ------------------------------------------------------------------------- chapter 12


def plot_online_trace(row: Tensor, trace: Tensor, block: int) -> Figure:
    r"""One row of logits and the kernel's running maximum after each block of its first sweep.

    ``row`` holds the :math:`C` logits of one row, ``trace`` the kernel's :math:`(m, r)`
    after each block, shape ``(number of blocks, 2)``. Bars are the logits, dotted lines the
    block boundaries, the step line the running maximum :math:`m`; each block is labelled
    with the running sum :math:`r` after it.
    """
    if trace.dim() != 2 or trace.shape[1] != 2:
        raise ValueError(f"plot_online_trace: trace must have shape (blocks, 2); got {tuple(trace.shape)}")
    c = row.numel()
    fig, ax = plt.subplots(figsize=(5.6, 3.4), constrained_layout=True)
    ax.bar(range(c), row.float().numpy(), color="0.75", width=0.8, label="logit $x_j$")
    edges = [min(b * block, c) for b in range(len(trace) + 1)]
    for b, (lo, hi) in enumerate(itertools.pairwise(edges)):
        m, r = (float(v) for v in trace[b])
        ax.hlines(m, lo - 0.5, hi - 0.5, color="tab:blue", linewidth=2.5,
                  label="running max $m$" if b == 0 else None)
        ax.text((lo + hi - 1) / 2, m + 0.3, f"r = {r:.2f}", ha="center", va="bottom",
                color="tab:blue", fontsize=12,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0})
        if b:
            ax.axvline(lo - 0.5, color="0.4", linestyle=":", linewidth=1)
    top = float(max(row.max(), trace[:, 0].max()))
    ax.set_ylim(float(row.min()) - 0.5, top + 1.6)
    ax.set_xlabel("class $j$")
    ax.set_ylabel("logit")
    ax.legend(loc="upper left", frameon=False)
    return phone_legible(fig)
