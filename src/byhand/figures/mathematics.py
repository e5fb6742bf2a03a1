"""Figures of the part "The mathematics" (chapters 2-4): one function per figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .style import phone_legible


def _diverging_image(ax, matrix: Tensor, title: str, annotate: bool = False):
    """Draw ``matrix`` with zero as white, negative blue and positive red."""
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.ticker import MaxNLocator

    values = matrix.detach().to(torch.float64).cpu()
    limit = float(values.abs().max()) or 1.0
    cmap = LinearSegmentedColormap.from_list("blue_white_red", ["#2166ac", "#ffffff", "#b2182b"])
    image = ax.imshow(values.numpy(), cmap=cmap, vmin=-limit, vmax=limit,
                      interpolation="nearest")
    ax.set_title(title)
    for axis, count in ((ax.yaxis, values.shape[0]), (ax.xaxis, values.shape[1])):
        if count <= 12:
            axis.set_ticks(range(count))
        else:
            axis.set_major_locator(MaxNLocator(integer=True))
    if annotate:
        for row in range(values.shape[0]):
            for col in range(values.shape[1]):
                value = float(values[row, col])
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(value) > 0.6 * limit else "black")
    return image


def plot_jacobian_patterns(panels: list[tuple[str, Tensor]], title: str | None = None) -> Figure:
    r"""Heat maps of Jacobians, one ``(title, J)`` pair per panel, two panels a row.

    Each ``J`` is 2-D with ``J[i, j]`` the derivative :math:`\partial y_i/\partial x_j`
    of output :math:`i` with respect to input :math:`j` (flatten tensor-valued inputs
    and outputs first). Zero entries are white, so the sparsity pattern (a diagonal, a
    row, blocks) is what one sees; each panel has its own symmetric colour scale and no
    colour bar, since the pattern, not the values, is the point. Two columns of 2.6 in
    (5.2 in wide) with at most five ticks an axis, starting at 0, so that the 12-point
    labels stay legible when the figure is shrunk to a phone's width; keep the titles
    short.
    """
    if not panels:
        raise ValueError("plot_jacobian_patterns needs at least one (title, J) panel")
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.7 * nrows),
                             squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax, (name, jac) in zip(flat, panels, strict=False):
        if jac.dim() != 2:
            raise ValueError(f"panel {name!r}: J must be 2-D; got shape {tuple(jac.shape)}")
        _diverging_image(ax, jac, name)
        for axis, count in ((ax.yaxis, jac.shape[0]), (ax.xaxis, jac.shape[1])):
            axis.set_ticks(range(0, count, -(-count // 5)))
        ax.set_xlabel("input")
        ax.set_ylabel("output")
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return phone_legible(fig)


def plot_softmax_jacobian(logits: Tensor) -> Figure:
    r"""The probabilities :math:`s = \operatorname{softmax}(x)` and the Jacobian
    :math:`J_{ij} = s_i(\delta_{ij} - s_j)` of a 1-D logit vector: a bar chart above a heat map.

    The two panels are stacked, so that both keep their size on a narrow screen; the
    heat map is annotated with its entries when there are at most 10 classes.
    """
    from ..softmax import softmax, softmax_jacobian

    x = logits.detach().to(torch.float64).cpu()
    if x.dim() != 1:
        raise ValueError(f"logits must be 1-D; got shape {tuple(x.shape)}")
    s, jac = softmax(x, 0), softmax_jacobian(x)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.0, 8.2), layout="constrained",
                                      gridspec_kw={"height_ratios": [1, 1.9]})
    positions = list(range(x.numel()))
    top.bar(positions, s.numpy(), color="tab:blue")
    for p in positions:
        top.annotate(f"$x_{{{p}}}$ = {float(x[p]):.1f}", (p, float(s[p])), ha="center",
                     va="bottom", fontsize=10)
    top.set_xticks(positions)
    top.set_ylim(0, 1.2 * float(s.max()))
    top.set_xlabel("class $i$")
    top.set_ylabel("probability $s_i$")
    top.set_title("softmax of the logits")
    image = _diverging_image(bottom, jac, r"$J_{ij} = s_i(\delta_{ij} - s_j)$",
                             annotate=x.numel() <= 10)
    for text in bottom.texts:
        text.set_fontsize(10)
    bottom.set_xticks(positions)
    bottom.set_yticks(positions)
    bottom.set_xlabel("input $x_j$")
    bottom.set_ylabel("output $s_i$")
    fig.colorbar(image, ax=bottom, shrink=0.85)
    return phone_legible(fig)


def plot_vjp_timing(sizes: list[int], seconds: dict[str, list[float]]) -> Figure:
    """Measured time per call against the number of classes ``C``, log-log, one line per method.

    The legend sits below the axes, off the data.
    """
    if any(len(times) != len(sizes) for times in seconds.values()):
        raise ValueError(f"plot_vjp_timing: every method needs one time per size ({len(sizes)})")
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for (name, times), marker in zip(seconds.items(), "osd^v", strict=False):
        ax.loglog(sizes, times, marker=marker, label=name)
    ax.set_xlabel("number of classes $C$")
    ax.set_ylabel("seconds per call")
    ax.set_title("Softmax backward: Jacobian product vs $O(C)$ formula")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=1)
    return phone_legible(fig)


def plot_log_softmax_error(panels: dict[str, tuple[Tensor, dict[str, Tensor]]], eps: float,
                           floor: float = 1e-10) -> Figure:
    r"""Relative error against the logit gap, log scale, one panel per output entry.

    ``panels`` maps a panel title to ``(gaps, {method name: relative errors})``, one
    error per gap. Errors below ``floor`` (exact results included) are drawn at
    ``floor``; infinite or NaN errors are drawn as crosses on the top edge. The dashed
    line is the unit roundoff ``eps / 2`` of the dtype. Panels are stacked with a shared
    gap axis, and one legend below them lists every method.
    """
    fig, axes = plt.subplots(len(panels), 1, figsize=(6.4, 3.3 * len(panels) + 1.6),
                             squeeze=False, layout="constrained", sharex=True)
    ceiling = 10.0
    handles: dict[str, object] = {}
    for ax, (title, (gaps, curves)) in zip(axes[:, 0], panels.items(), strict=True):
        x = gaps.detach().to(torch.float64).cpu()
        for (name, err), style in zip(curves.items(), ["-", "--", ":", "-."], strict=False):
            e = err.detach().to(torch.float64).cpu()
            finite = torch.isfinite(e)
            shown = e.clamp(min=floor, max=ceiling)
            (line,) = ax.semilogy(x[finite].numpy(), shown[finite].numpy(), style, label=name)
            handles.setdefault(name, line)
            if (~finite).any():
                (cross,) = ax.semilogy(x[~finite].numpy(), [ceiling] * int((~finite).sum()), "x",
                                       color=line.get_color(), label=f"{name}: inf or NaN")
                handles.setdefault(cross.get_label(), cross)
        rule = ax.axhline(eps / 2, color="gray", linestyle="--", linewidth=0.8,
                          label="unit roundoff")
        handles.setdefault("unit roundoff", rule)
        ax.set_ylim(floor / 2, ceiling * 3)
        ax.set_title(title)
        ax.set_ylabel("relative error")
        ax.grid(True, which="both", alpha=0.3)
    axes[-1, 0].set_xlabel(r"logit gap $d$")
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=2,
               title=f"errors below {floor:.0e} are drawn at {floor:.0e}")
    return phone_legible(fig)
