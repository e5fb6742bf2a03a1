"""Figures of the part "The backward, by hand" (chapters 5-7): one function per figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from .style import phone_legible


def _ce_grouped_bars(ax: plt.Axes, series: dict[str, Tensor], colors: list[str] | None = None) -> None:
    """Draw one group of bars per class index, one bar per entry of ``series``."""
    k = len(series)
    width = 0.8 / k
    for i, (label, values) in enumerate(series.items()):
        v = values.detach().cpu().double()
        pos = torch.arange(v.numel(), dtype=torch.float64) + (i - (k - 1) / 2) * width
        color = None if colors is None else colors[i % len(colors)]
        ax.bar(pos.numpy(), v.numpy(), width=width, label=label, color=color)
    ax.axhline(0.0, color="black", linewidth=0.8)


def _ce_check_logits(fn: str, logits: Tensor, target: int) -> None:
    if logits.dim() != 1 or logits.numel() < 2:
        raise ValueError(
            f"{fn}: logits must be one sample's scores of shape (C,) with C >= 2; "
            f"got shape {tuple(logits.shape)}"
        )
    if not 0 <= target < logits.numel():
        raise ValueError(
            f"{fn}: target must be a class index in [0, {logits.numel() - 1}]; got {target}"
        )


def plot_ce_gradient_bars(logits: Tensor, target: int) -> Figure:
    r"""One sample's cross-entropy gradient as bars: softmax, one-hot target and their difference.

    For logits :math:`x_j` and target class :math:`y`, the gradient of
    :math:`L = -\log s_y` is :math:`\partial L/\partial x_j = s_j - \delta_{jy}`; the
    three bars of class :math:`j` show the softmax, the one-hot target and that
    gradient (as :func:`byhand.losses.cross_entropy_backward` computes it), which is
    negative only at :math:`j = y`.
    """
    from ..losses import cross_entropy_backward

    _ce_check_logits("plot_ce_gradient_bars", logits, target)
    x = logits.detach().cpu().double()
    s = torch.softmax(x, dim=0)
    onehot = torch.zeros_like(s)
    onehot[target] = 1.0
    grad = cross_entropy_backward(torch.ones((), dtype=x.dtype), x, torch.tensor(target))
    fig, ax = plt.subplots(figsize=(4.6, 3.8), layout="constrained")
    _ce_grouped_bars(
        ax,
        {r"softmax $s_j$": s, r"one-hot $\delta_{jy}$": onehot,
         r"gradient $s_j - \delta_{jy}$": grad},
        colors=["tab:blue", "tab:gray", "tab:red"],
    )
    ax.set_xticks(
        range(x.numel()),
        [f"{j}" + (" (y)" if j == target else "") for j in range(x.numel())],
    )
    ax.set_xlabel("class $j$")
    ax.set_ylabel("value")
    fig.legend(loc="outside upper center", ncol=3, fontsize=11, handlelength=1.2,
               columnspacing=1.0)
    return phone_legible(fig)


def plot_gradient_vs_true_logit(logits: Tensor, target: int, values: Tensor) -> Figure:
    r"""How :math:`\partial L/\partial x_j = s_j - \delta_{jy}` moves as the true logit is swept.

    ``logits`` fixes the other classes' scores; the entry ``logits[target]`` is replaced
    by each of ``values`` in turn. The true-class gradient :math:`s_y - 1` rises from
    :math:`-1` to 0 while every other class's :math:`s_k` falls to 0; the curves sum to
    zero at every point. The loss :math:`-\log s_y` is drawn on a second axis.
    """
    from ..losses import cross_entropy_backward

    _ce_check_logits("plot_gradient_vs_true_logit", logits, target)
    if values.dim() != 1 or values.numel() < 2:
        raise ValueError(
            "plot_gradient_vs_true_logit: values must be a 1-D sweep of at least two points; "
            f"got shape {tuple(values.shape)}"
        )
    v = values.detach().cpu().double()
    x = logits.detach().cpu().double().repeat(v.numel(), 1)
    x[:, target] = v
    y = torch.full((v.numel(),), target, dtype=torch.long)
    s = torch.softmax(x, dim=1)
    grad = cross_entropy_backward(torch.ones(v.numel(), dtype=x.dtype), x, y, reduction="none")
    fig, ax = plt.subplots(figsize=(4.6, 4.8), layout="constrained")
    ax.plot(v.numpy(), grad[:, target].numpy(), color="tab:red", linewidth=2.5,
            label=rf"class {target} = $y$: $s_{{{target}}} - 1$")
    others = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink",
              "tab:olive", "tab:cyan", "tab:gray"]
    for n, k in enumerate(k for k in range(x.shape[1]) if k != target):
        ax.plot(v.numpy(), grad[:, k].numpy(), color=others[n % len(others)],
                label=rf"class {k}: $s_{{{k}}}$")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(r"true-class logit $x_y$")
    ax.set_ylabel(r"$\partial L / \partial x_j$")
    loss_ax = ax.twinx()
    loss_ax.plot(v.numpy(), (-s[:, target].log()).numpy(), color="black", linestyle="--",
                 label="loss (right axis)")
    loss_ax.set_ylabel(r"loss $-\log s_y$")
    handles, labels = ax.get_legend_handles_labels()
    extra_h, extra_l = loss_ax.get_legend_handles_labels()
    fig.legend(handles + extra_h, labels + extra_l, loc="outside lower center", ncol=1,
               fontsize=11)
    return phone_legible(fig)


# The graph of chapter 5: node -> (column, row, forward formula, dL/d(node)); edges carry
# the local derivative d(child)/d(parent). Column 0 is the max branch, 1 the main line.
_CE_NODES: dict[str, tuple[int, int, str, str]] = {
    "x": (1, 0, r"$x_{nj}$", r"$(s_{nj} - [j = y_n])/N$"),
    "m": (0, 1, r"$m_n = \max_k\, x_{nk}$", r"$0$"),
    "u": (1, 2, r"$u_{nj} = x_{nj} - m_n$", r"$(s_{nj} - [j = y_n])/N$"),
    "e": (1, 3, r"$e_{nj} = \exp u_{nj}$", r"$1/(N \tilde Z_n)$"),
    "Z": (1, 4, r"$\tilde Z_n = \sum_k e_{nk}$", r"$1/(N \tilde Z_n)$"),
    "lam": (1, 5, r"$\widetilde{\mathrm{lse}}_n = \log \tilde Z_n$", r"$1/N$"),
    "ell": (1, 6, r"$\ell_{nj} = u_{nj} - \widetilde{\mathrm{lse}}_n$", r"$-[j = y_n]/N$"),
    "Ln": (1, 7, r"$L_n = -\ell_{nj}$ at $j = y_n$", r"$1/N$"),
    "L": (1, 8, r"$L = \sum_n L_n/N$", r"$1$"),
}
_CE_EDGES: tuple[tuple[str, str, str], ...] = (
    ("x", "m", r"$[j = j^*_n]$"),
    ("x", "u", r"$1$"),
    ("m", "u", r"$-1$"),
    ("u", "e", r"$e_{nj}$"),
    ("e", "Z", r"$1$"),
    ("Z", "lam", r"$1/\tilde Z_n$"),
    ("lam", "ell", r"$-1$"),
    ("u", "ell", r"$1$"),
    ("ell", "Ln", r"$-[j = y_n]$"),
    ("Ln", "L", r"$1/N$"),
)
_CE_COLUMNS = (0.18, 0.43)


def _ce_edge_label_position(parent: str, child: str) -> tuple[float, float, str]:
    """Where the local derivative of an edge is written: ``(x, y, horizontal alignment)``."""
    pc, pr = _CE_NODES[parent][:2]
    cc, cr = _CE_NODES[child][:2]
    if (parent, child) == ("u", "ell"):
        return 0.07, (pr + cr) / 2, "center"
    if (parent, child) == ("x", "u"):
        return _CE_COLUMNS[1] + 0.03, 0.55, "left"
    if pc != cc:
        return _CE_COLUMNS[0] + 0.07, (pr + cr) / 2 - (0.2 if parent == "x" else -0.25), "right"
    return _CE_COLUMNS[1] + 0.03, (pr + cr) / 2, "left"


def plot_ce_graph() -> Figure:
    r"""The computational graph of the mean cross-entropy, one atomic operation per node.

    Read downwards, it is the forward :math:`x \to m \to u \to e \to \tilde Z \to
    \widetilde{\mathrm{lse}} \to \ell \to L_n \to L` (boxes; :math:`u` feeds both
    :math:`e` and :math:`\ell`). Each
    arrow carries its local derivative :math:`\partial(\text{child})/\partial(\text{parent})`
    in blue (:math:`j^*_n` is the position of the row maximum); the red text right of
    each node is the gradient :math:`\partial L/\partial(\text{node})` that the backward
    leaves there, read upwards. The max branch :math:`m_n` receives exactly zero.
    """
    fig, ax = plt.subplots(figsize=(5.2, 8.0), layout="constrained")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(8.5, -1.0)
    ax.axis("off")
    boxes = {}
    for name, (col, row, formula, grad) in _CE_NODES.items():
        boxes[name] = ax.text(
            _CE_COLUMNS[col], row, formula, ha="center", va="center", fontsize=15,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "black"},
            gid=f"node-{name}",
        )
        # the max branch's gradient sits under the left of its box, clear of the arrow to u
        gx, gy, ha = (0.67, row, "left") if col == 1 else (_CE_COLUMNS[0] - 0.1, row + 0.55, "center")
        ax.text(gx, gy, grad, ha=ha, va="center", fontsize=14.5, color="tab:red",
                gid=f"grad-{name}")
    ax.text(_CE_COLUMNS[1], -0.75, "forward, down", ha="center", va="center", fontsize=14)
    ax.text(0.67, -0.75, r"$\partial L/\partial(\cdot)$, up", ha="left", va="center",
            fontsize=14, color="tab:red")
    for parent, child, local in _CE_EDGES:
        skip = (parent, child) == ("u", "ell")
        end = (0.0, 0.5) if skip else (0.12, 1.0) if parent == "m" else (0.5, 1.0)
        ax.annotate(
            "", xy=end, xycoords=boxes[child],
            xytext=(0.0, 0.5) if skip else (0.75, 0.0) if parent == "m" else (0.5, 0.0),
            textcoords=boxes[parent],
            arrowprops={"arrowstyle": "-|>", "color": "0.3", "linewidth": 1.3,
                        "shrinkA": 2, "shrinkB": 2,
                        "connectionstyle": "arc3,rad=0.5" if skip else "arc3"},
        )
        lx, ly, ha = _ce_edge_label_position(parent, child)
        ax.text(lx, ly, local, ha=ha, va="center", fontsize=14, color="tab:blue",
                gid=f"edge-{parent}-{child}")
    return phone_legible(fig)

def plot_smoothed_target(target: int, n_classes: int, label_smoothing: float,
                         weight: Tensor | None = None) -> Figure:
    r"""The effective target row :math:`\tilde t_j` that label smoothing (and class weights) put in the loss.

    Bars show the one-hot :math:`\delta_{jy}`, the smoothed mixture
    :math:`t'_j = (1-\varepsilon)\delta_{jy} + \varepsilon/C`, and, when ``weight`` is
    given, the weighted :math:`\tilde t_j = (1-\varepsilon) w_y \delta_{jy} + (\varepsilon/C) w_j`.
    The legend sits below the axes, off the bars.
    """
    if n_classes < 2 or not 0 <= target < n_classes:
        raise ValueError(
            f"plot_smoothed_target: need n_classes >= 2 and 0 <= target < n_classes; "
            f"got target={target}, n_classes={n_classes}"
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"plot_smoothed_target: label_smoothing must be in [0, 1]; got {label_smoothing}"
        )
    onehot = torch.zeros(n_classes, dtype=torch.float64)
    onehot[target] = 1.0
    eps = label_smoothing
    series = {r"one-hot $\delta_{jy}$": onehot,
              rf"smoothed $t'_j$, $\varepsilon = {eps:g}$": (1 - eps) * onehot + eps / n_classes}
    if weight is not None:
        if weight.shape != (n_classes,):
            raise ValueError(
                f"plot_smoothed_target: weight must have shape ({n_classes},); "
                f"got {tuple(weight.shape)}"
            )
        w = weight.detach().cpu().double()
        series[r"weighted $\tilde t_j$"] = (1 - eps) * w[target] * onehot + (eps / n_classes) * w
    fig, ax = plt.subplots(figsize=(5.4, 4.6), layout="constrained")
    _ce_grouped_bars(ax, series)
    ax.set_xticks(
        range(n_classes),
        [f"j = {j}" + (" (y)" if j == target else "") for j in range(n_classes)],
    )
    ax.set_xlabel("class $j$")
    ax.set_ylabel(r"target entry $\tilde t_j$")
    ax.set_title("What the loss is asked to match")
    fig.legend(loc="outside lower center", ncol=1, fontsize=11)
    return phone_legible(fig)


def saved_bytes_bars(
    labels: list[str], nbytes: list[float], unit_bytes: float | None = None,
    title: str = "What the backward keeps alive",
) -> Figure:
    """Horizontal bars of the bytes each variant saves for backward, in MiB.

    ``unit_bytes``, when given, draws a dashed line at that size (one ``N×C`` tensor),
    labelled above the bars rather than by a legend, and labels every bar with its
    multiple of it.
    """
    if len(labels) != len(nbytes):
        raise ValueError(
            f"saved_bytes_bars: labels and nbytes must have the same length; "
            f"got {len(labels)} and {len(nbytes)}"
        )
    mib = [b / 2**20 for b in nbytes]
    fig, ax = plt.subplots(figsize=(5.6, 0.6 * len(labels) + 1.6))
    rows = list(range(len(labels)))[::-1]
    ax.barh(rows, mib, color="tab:blue", alpha=0.8)
    ax.set_yticks(rows, labels)
    right = max(mib) if mib else 1.0
    for row, value, b in zip(rows, mib, nbytes, strict=True):
        text = f"{value:.1f} MiB"
        if unit_bytes:
            text += f"  ({b / unit_bytes:.2f}×)"
        ax.text(value + 0.01 * right, row, text, va="center", fontsize=10.5)
    if unit_bytes:
        ax.axvline(unit_bytes / 2**20, color="gray", linestyle="--", linewidth=1)
        ax.text(unit_bytes / 2**20, len(labels) - 0.35, "one N×C tensor", color="gray",
                ha="center", va="bottom", fontsize=10.5)
    ax.set_ylim(-0.6, len(labels) - 0.1)
    ax.set_xlim(0, right * 1.75)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_xlabel("bytes saved for backward (MiB)")
    ax.set_title(title)
    phone_legible(fig)
    fig.tight_layout()
    return fig


def ours_vs_reference_gallery(
    panels: dict[str, tuple[Tensor, Tensor]], ncols: int = 2,
    title: str | None = None,
) -> Figure:
    """One scatter panel per case: reference on x, ours on y, the diagonal is correct.

    Each value of ``panels`` is ``(ours, reference)`` with the same number of
    entries. A constant ratio shows as a line of the wrong slope; NaN entries cannot be
    drawn and are counted in the panel instead. Two columns by default, at most 5.4 in
    wide with three ticks per axis and the axis names on the outer panels only, so that
    the panels stay legible on a phone; ``title``, when given, goes above them all.
    """
    n = len(panels)
    if n == 0:
        raise ValueError("ours_vs_reference_gallery: panels must not be empty")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    side = min(2.7, 5.4 / ncols)                      # the figure stays within 5.4 in
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols, side * nrows), squeeze=False,
                             layout="constrained")
    for ax, (label, (ours, ref)) in zip(axes.flat, panels.items(), strict=False):
        a = ours.detach().to(torch.float64).cpu().reshape(-1)
        b = ref.detach().to(torch.float64).cpu().reshape(-1)
        if a.numel() != b.numel():
            raise ValueError(
                f"ours_vs_reference_gallery: panel {label!r} has {a.numel()} entries in ours "
                f"and {b.numel()} in the reference"
            )
        finite = torch.isfinite(a) & torch.isfinite(b)
        lo = float(b[torch.isfinite(b)].min()) if bool(torch.isfinite(b).any()) else -1.0
        hi = float(b[torch.isfinite(b)].max()) if bool(torch.isfinite(b).any()) else 1.0
        ax.plot([lo, hi], [lo, hi], color="gray", linestyle="--", linewidth=1)
        ax.scatter(b[finite].numpy(), a[finite].numpy(), s=12, color="tab:red", alpha=0.8)
        missing = int((~finite).sum())
        if missing:
            ax.text(0.5, 0.5, f"{missing} of {a.numel()} entries\nare NaN or inf",
                    transform=ax.transAxes, ha="center", va="center", fontsize=11,
                    color="tab:red")
        ax.set_title(label, fontsize=11)
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.yaxis.set_major_locator(MaxNLocator(3))
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_visible(False)
            continue
        if k % ncols == 0:
            ax.set_ylabel("ours")
        if k + ncols >= n:                            # nothing drawn below this panel
            ax.set_xlabel("autograd")
    if title:
        fig.suptitle(title)
    return phone_legible(fig)

