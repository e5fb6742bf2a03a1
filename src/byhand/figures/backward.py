"""Figures of the part "The backward, by hand" (chapters 5-7): one function per figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor


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
    fig, ax = plt.subplots(figsize=(7.0, 3.8), constrained_layout=True)
    _ce_grouped_bars(
        ax,
        {r"softmax $s_j$": s, r"one-hot $\delta_{jy}$": onehot,
         r"gradient $s_j - \delta_{jy}$": grad},
        colors=["tab:blue", "tab:gray", "tab:red"],
    )
    ax.set_xticks(
        range(x.numel()),
        [f"j = {j}" + (" (y)" if j == target else "") for j in range(x.numel())],
    )
    ax.set_xlabel("class $j$")
    ax.set_ylabel("value")
    ax.set_title(r"One sample: $\partial L/\partial x_j = s_j - \delta_{jy}$")
    ax.legend(loc="lower left", fontsize=9)
    return fig


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
    fig, ax = plt.subplots(figsize=(7.0, 4.6), layout="constrained")
    ax.plot(v.numpy(), grad[:, target].numpy(), color="tab:red", linewidth=2.5,
            label=rf"true class $j = y = {target}$: $s_y - 1$")
    others = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink",
              "tab:olive", "tab:cyan", "tab:gray"]
    for n, k in enumerate(k for k in range(x.shape[1]) if k != target):
        ax.plot(v.numpy(), grad[:, k].numpy(), color=others[n % len(others)],
                label=rf"class $k = {k}$: $s_k$")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(r"true-class logit $x_y$")
    ax.set_ylabel(r"$\partial L / \partial x_j$")
    ax.set_title(r"The gradient as the true-class logit grows")
    loss_ax = ax.twinx()
    loss_ax.plot(v.numpy(), (-s[:, target].log()).numpy(), color="black", linestyle="--",
                 label=r"loss $-\log s_y$ (right axis)")
    loss_ax.set_ylabel(r"loss $-\log s_y$")
    handles, labels = ax.get_legend_handles_labels()
    extra_h, extra_l = loss_ax.get_legend_handles_labels()
    fig.legend(handles + extra_h, labels + extra_l, loc="outside lower center", ncol=3,
               fontsize=8)
    return fig


def plot_smoothed_target(target: int, n_classes: int, label_smoothing: float,
                         weight: Tensor | None = None) -> Figure:
    r"""The target row :math:`q_{c}` that label smoothing (and class weights) put in the loss.

    Bars show the one-hot :math:`\delta_{cy}`, the smoothed mixture
    :math:`(1-\varepsilon)\delta_{cy} + \varepsilon/C`, and, when ``weight`` is given,
    the weighted :math:`q_c = (1-\varepsilon) w_y \delta_{cy} + (\varepsilon/C) w_c`.
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
    series = {r"one-hot $\delta_{cy}$": onehot,
              rf"smoothed, $\varepsilon = {eps:g}$": (1 - eps) * onehot + eps / n_classes}
    if weight is not None:
        if weight.shape != (n_classes,):
            raise ValueError(
                f"plot_smoothed_target: weight must have shape ({n_classes},); "
                f"got {tuple(weight.shape)}"
            )
        w = weight.detach().cpu().double()
        series[r"weighted $q_c$"] = (1 - eps) * w[target] * onehot + (eps / n_classes) * w
    fig, ax = plt.subplots(figsize=(7.0, 3.6), constrained_layout=True)
    _ce_grouped_bars(ax, series)
    ax.set_xticks(
        range(n_classes),
        [f"c = {c}" + (" (y)" if c == target else "") for c in range(n_classes)],
    )
    ax.set_xlabel("class $c$")
    ax.set_ylabel(r"target entry $q_c$")
    ax.set_title("What the loss is asked to match under label smoothing")
    ax.legend(fontsize=9)
    return fig


def plot_fp16_limits(
    n: Tensor, numerator: Tensor, denominator: Tensor, zero_fraction: dict[str, Tensor],
    n_loss_inf: int, n_grad_zero: int,
) -> Figure:
    r"""Where a float16 mean cross-entropy breaks, against the batch size :math:`N`.

    Left: the two numbers the ``mean`` must hold, :math:`\sum_i L_i` and
    :math:`D = \sum_i w_{y_i}`, against float16's largest finite value 65,504, with
    the measured first :math:`N` at which the loss is no longer finite
    (``n_loss_inf``) and at which every gradient entry is exactly zero
    (``n_grad_zero``). Right: the fraction of gradient entries that are exactly zero,
    one curve per entry of ``zero_fraction``.
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
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.0), constrained_layout=True)
    left.plot(nn_, numerator.detach().cpu().double().numpy(), marker="o", markersize=3,
              label=r"summed loss $\sum_i L_i$")
    left.plot(nn_, denominator.detach().cpu().double().numpy(), marker="s", markersize=3,
              label=r"denominator $D = \sum_i w_{y_i}$")
    left.axhline(fp16_max, color="black", linestyle=":", label=f"float16 max ({fp16_max:,.0f})")
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xlabel("batch size $N$")
    left.set_ylabel("value (computed in float32)")
    left.set_title("What the float16 mean has to hold")
    for ax in (left, right):
        ax.axvline(n_loss_inf, color="tab:orange", linestyle="--",
                   label=f"loss inf from N = {n_loss_inf:,}")
        ax.axvline(n_grad_zero, color="tab:red", linestyle="--",
                   label=f"loss NaN, gradient 0 from N = {n_grad_zero:,}")
    for label, frac in zero_fraction.items():
        right.plot(nn_, frac.detach().cpu().double().numpy(), marker="o", markersize=3,
                   label=label)
    right.set_xscale("log", base=2)
    right.set_ylim(-0.05, 1.05)
    right.set_xlabel("batch size $N$")
    right.set_ylabel("fraction of gradient entries exactly 0")
    right.set_title("What the float16 gradient looks like")
    left.legend(fontsize=8, loc="upper left")
    right.legend(fontsize=8, loc="center left")
    return fig






def saved_bytes_bars(
    labels: list[str], nbytes: list[float], unit_bytes: float | None = None,
    title: str = "What the backward keeps alive",
) -> Figure:
    """Horizontal bars of the bytes each variant saves for backward, in MiB.

    ``unit_bytes``, when given, draws a dashed line at that size (one ``N×C`` tensor)
    and labels every bar with its multiple of it.
    """
    if len(labels) != len(nbytes):
        raise ValueError(
            f"saved_bytes_bars: labels and nbytes must have the same length; "
            f"got {len(labels)} and {len(nbytes)}"
        )
    mib = [b / 2**20 for b in nbytes]
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(labels) + 1.4))
    rows = list(range(len(labels)))[::-1]
    ax.barh(rows, mib, color="tab:blue", alpha=0.8)
    ax.set_yticks(rows, labels)
    right = max(mib) if mib else 1.0
    for row, value, b in zip(rows, mib, nbytes, strict=True):
        text = f"{value:.1f} MiB"
        if unit_bytes:
            text += f"  ({b / unit_bytes:.2f}×)"
        ax.text(value + 0.01 * right, row, text, va="center", fontsize=9)
    if unit_bytes:
        ax.axvline(unit_bytes / 2**20, color="gray", linestyle="--", linewidth=1,
                   label="one N×C tensor")
        ax.legend(loc="upper right")
    ax.set_xlim(0, right * 1.35)
    ax.set_xlabel("bytes saved for backward (MiB)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def ours_vs_reference_gallery(
    panels: dict[str, tuple[Tensor, Tensor]], ncols: int = 4,
    title: str = "Hand-written gradient against the reference, entry by entry",
) -> Figure:
    """One scatter panel per case: reference on x, ours on y, the diagonal is correct.

    Each value of ``panels`` is ``(ours, reference)`` with the same number of
    entries. A constant ratio shows as a line of the wrong slope; NaN entries cannot be
    drawn and are counted in the panel instead.
    """
    n = len(panels)
    if n == 0:
        raise ValueError("ours_vs_reference_gallery: panels must not be empty")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 3.0 * nrows), squeeze=False)
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
                    transform=ax.transAxes, ha="center", va="center", fontsize=10,
                    color="tab:red")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("reference (autograd)")
        ax.set_ylabel("ours")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig

