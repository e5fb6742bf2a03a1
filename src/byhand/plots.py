"""The figures the chapters draw, one function per figure, each returning its ``Figure``.

Sections below belong to the chapters that use them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor


# --- figures of chapter 01 (what CE and NLL compute)
def plot_weight_grads(grads: dict[str, Tensor], target: int) -> Figure:
    r"""Heat maps of a ``Linear`` layer's ``weight.grad``, one panel per loss, side by side.

    Panel :math:`p` shows :math:`\partial L_p/\partial W_{ck}` with the output class
    :math:`c` down the rows and the input feature :math:`k` across, each cell annotated
    with its value; the row of the target class ``target`` is labelled. All panels share
    one symmetric colour scale, so a zero is white in every panel; annotations on dark
    cells are drawn in white.
    """
    if not grads:
        raise ValueError("plot_weight_grads: grads must hold at least one gradient")
    mats = {title: g.detach().cpu().double() for title, g in grads.items()}
    vmax = max(float(m.abs().max()) for m in mats.values()) or 1.0
    fig, axes = plt.subplots(
        1, len(mats), figsize=(4.0 * len(mats), 3.6), squeeze=False, constrained_layout=True
    )
    for ax, (title, m) in zip(axes[0], mats.items(), strict=True):
        ax.imshow(m.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        for c in range(m.shape[0]):
            for k in range(m.shape[1]):
                value = float(m[c, k])
                colour = "white" if abs(value) > 0.6 * vmax else "black"
                ax.text(k, c, f"{value:+.3f}", ha="center", va="center", fontsize=9, color=colour)
        ax.set_xticks(range(m.shape[1]), [f"k = {k}" for k in range(m.shape[1])])
        ax.set_yticks(
            range(m.shape[0]),
            [f"c = {c}" + (" (target)" if c == target else "") for c in range(m.shape[0])],
        )
        ax.set_xlabel("input feature $k$")
        ax.set_ylabel("output class $c$")
        ax.set_title(title)
    return fig


def plot_loss_runaway(nll_losses: list[float], ce_losses: list[float]) -> Figure:
    r"""Training curves of the same ``Linear`` layer under two losses, one panel each.

    Left: ``NLLLoss`` fed the raw outputs :math:`z_{nc}`, whose loss
    :math:`-\frac1N\sum_n z_{n y_n}` is linear in the parameters and falls without
    bound. Right: ``CrossEntropyLoss`` on the same outputs, which stays
    :math:`\ge 0`. A dashed line marks zero in both panels.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6), constrained_layout=True)
    panels = (
        (left, nll_losses, "NLLLoss on raw Linear outputs", "tab:red"),
        (right, ce_losses, "CrossEntropyLoss on the same outputs", "tab:blue"),
    )
    for ax, losses, title, colour in panels:
        ax.plot(range(len(losses)), losses, color=colour)
        ax.axhline(0.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_xlabel("SGD step")
        ax.set_ylabel("training loss")
        ax.set_title(title)
    return fig


def plot_ce_of_probabilities(p: Tensor, ce_of_probs: dict[str, Tensor]) -> Figure:
    r"""What ``CrossEntropyLoss`` returns when handed probabilities, against :math:`-\log p`.

    ``p`` is the probability given to the target class (the x axis). The reference
    curve is the true cross-entropy :math:`-\log p`; each entry of ``ce_of_probs``
    (label to values at ``p``) is one curve of :math:`\operatorname{CE}` applied to the
    probability vector as if it were logits, i.e. :math:`-p_y + \log\sum_k e^{p_k}`.
    """
    x = torch.as_tensor(p).detach().cpu().double()
    fig, ax = plt.subplots(figsize=(6.0, 4.0), constrained_layout=True)
    ax.plot(x.numpy(), (-x.log()).numpy(), color="black", label=r"true loss $-\log p_y$")
    for label, values in ce_of_probs.items():
        ax.plot(x.numpy(), values.detach().cpu().double().numpy(), label=label)
    ax.set_xlabel("probability given to the target class, $p_y$")
    ax.set_ylabel("loss")
    ax.set_title("CrossEntropyLoss fed probabilities instead of logits")
    ax.legend()
    return fig


# --- figures of chapters 02-04 (index notation, softmax Jacobian, log-softmax)


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

    Each ``J`` is 2-D with ``J[i, p]`` the derivative of output :math:`i` with respect
    to input :math:`p` (flatten tensor-valued inputs and outputs first). Zero entries
    are white, so the sparsity pattern (a diagonal, a row, blocks) is what one sees.
    """
    if not panels:
        raise ValueError("plot_jacobian_patterns needs at least one (title, J) panel")
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.9 * nrows),
                             squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax, (name, jac) in zip(flat, panels, strict=False):
        if jac.dim() != 2:
            raise ValueError(f"panel {name!r}: J must be 2-D; got shape {tuple(jac.shape)}")
        image = _diverging_image(ax, jac, name)
        ax.set_xlabel("input index $p$ (flattened)")
        ax.set_ylabel("output index $i$ (flattened)")
        fig.colorbar(image, ax=ax, shrink=0.8)
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def plot_softmax_jacobian(logits: Tensor) -> Figure:
    r"""The probabilities :math:`s = \operatorname{softmax}(x)` and the Jacobian
    :math:`J_{ij} = s_i(\delta_{ij} - s_j)` of a 1-D logit vector, as a bar chart and a heat map."""
    from .softmax import softmax, softmax_jacobian

    x = logits.detach().to(torch.float64).cpu()
    if x.dim() != 1:
        raise ValueError(f"logits must be 1-D; got shape {tuple(x.shape)}")
    s, jac = softmax(x), softmax_jacobian(x)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.3), layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 1.25]})
    positions = list(range(x.numel()))
    left.bar(positions, s.numpy(), color="tab:blue")
    for p in positions:
        left.annotate(f"$x_{{{p}}}$={float(x[p]):.1f}", (p, float(s[p])), ha="center",
                      va="bottom", fontsize=7)
    left.set_xticks(positions)
    left.set_xlabel("class $i$")
    left.set_ylabel("probability $s_i$")
    left.set_title("softmax of the logits")
    image = _diverging_image(right, jac, r"$J_{ij} = s_i(\delta_{ij} - s_j)$",
                             annotate=x.numel() <= 10)
    right.set_xticks(positions)
    right.set_yticks(positions)
    right.set_xlabel("input $x_j$")
    right.set_ylabel("output $s_i$")
    fig.colorbar(image, ax=right, shrink=0.85)
    return fig


def plot_vjp_timing(sizes: list[int], seconds: dict[str, list[float]]) -> Figure:
    """Measured time per call against the vector length ``n``, log-log, one line per method."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    for (name, times), marker in zip(seconds.items(), "osd^v", strict=False):
        ax.loglog(sizes, times, marker=marker, label=name)
    ax.set_xlabel("length $n$ of the logit vector")
    ax.set_ylabel("seconds per call (best of repeats)")
    ax.set_title("Softmax backward: Jacobian product vs $O(n)$ formula")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def plot_log_softmax_error(panels: dict[str, tuple[Tensor, dict[str, Tensor]]], eps: float,
                           floor: float = 1e-10) -> Figure:
    r"""Relative error against the logit gap, log scale, one panel per output entry.

    ``panels`` maps a panel title to ``(gaps, {method name: relative errors})``, one
    error per gap. Errors below ``floor`` (exact results included) are drawn at
    ``floor``; infinite or NaN errors are drawn as crosses on the top edge. The dashed
    line is the unit roundoff ``eps / 2`` of the dtype.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.2),
                             squeeze=False, layout="constrained", sharey=True)
    ceiling = 10.0
    for ax, (title, (gaps, curves)) in zip(axes[0], panels.items(), strict=True):
        x = gaps.detach().to(torch.float64).cpu()
        for (name, err), style in zip(curves.items(), ["-", "--", ":", "-."], strict=False):
            e = err.detach().to(torch.float64).cpu()
            finite = torch.isfinite(e)
            shown = e.clamp(min=floor, max=ceiling)
            (line,) = ax.semilogy(x[finite].numpy(), shown[finite].numpy(), style, label=name)
            if (~finite).any():
                ax.semilogy(x[~finite].numpy(), [ceiling] * int((~finite).sum()), "x",
                            color=line.get_color(), label=f"{name}: inf or NaN")
        ax.axhline(eps / 2, color="gray", linestyle="--", linewidth=0.8,
                   label="unit roundoff")
        ax.set_ylim(floor / 2, ceiling * 3)
        ax.set_xlabel(r"logit gap $d$")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(f"relative error (below {floor:.0e} drawn at {floor:.0e})")
    return fig


# --- figures of chapters 05-06 (the CE/NLL backward, every option)
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
    from .losses import cross_entropy_backward

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
    from .losses import cross_entropy_backward

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



# --- figures of chapter 07 (a custom autograd.Function)


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

# --- figures of chapter 08 (Linear and ReLU by hand)
def plot_relu_subgradients(derivative_at_zero: dict[str, float], limit: float = 2.0) -> Figure:
    r"""ReLU and its derivative, with the value each formulation's backward uses at 0.

    Left: :math:`y = \max(x, 0)` on :math:`[-\text{limit}, \text{limit}]`. Right: the
    derivative :math:`[x > 0]`, drawn as two open-ended pieces, and one marker at
    :math:`x = 0` per entry of ``derivative_at_zero`` (label to the gradient that
    formulation's autograd backward returns at exactly 0).
    """
    if not derivative_at_zero:
        raise ValueError("plot_relu_subgradients: derivative_at_zero must hold at least one value")
    if not limit > 0:
        raise ValueError(f"plot_relu_subgradients: limit must be positive; got {limit}")
    x = torch.linspace(-limit, limit, 401, dtype=torch.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6), constrained_layout=True)
    left.plot(x.numpy(), torch.relu(x).numpy(), color="tab:blue")
    left.set_xlabel("$x$")
    left.set_ylabel(r"$\mathrm{relu}(x) = \max(x, 0)$")
    left.set_title("ReLU")
    right.plot([-limit, 0.0], [0.0, 0.0], color="tab:blue", label=r"$[x > 0]$ for $x \ne 0$")
    right.plot([0.0, limit], [1.0, 1.0], color="tab:blue")
    markers = ["o", "s", "D", "^", "v", "P"]
    for i, (label, value) in enumerate(derivative_at_zero.items()):
        right.plot([0.0], [float(value)], linestyle="none", marker=markers[i % len(markers)],
                   markersize=9 - i, label=f"{label}: {float(value):g} at 0")
    right.set_ylim(-0.25, 1.25)
    right.set_xlabel("$x$")
    right.set_ylabel(r"$\partial y / \partial x$")
    right.set_title("Its derivative, and the choices at $x = 0$")
    right.legend(loc="upper left", fontsize=8)
    return fig


def plot_saturation(
    logit: Tensor, panels: dict[str, dict[str, Tensor]],
    shade_below: dict[str, float] | None = None, shade_label: str = "confidently wrong",
) -> Figure:
    r"""Gradient magnitude against the logit of the true class, one panel per output layer.

    ``panels`` maps a panel title to its curves (label to values, one value per entry of
    ``logit``), typically :math:`|\partial L/\partial z_y|` of one sample for a squared
    error and for the matching log-loss. The y axis is logarithmic, so a gradient that
    vanishes exponentially shows as a straight line going down. ``shade_below`` maps a
    panel title to a logit below which that panel is shaded and labelled
    ``shade_label`` (for instance where the true class gets less than 1%).
    """
    if not panels or any(not curves for curves in panels.values()):
        raise ValueError("plot_saturation: panels must hold at least one panel, each with curves")
    unknown = set(shade_below or {}) - set(panels)
    if unknown:
        raise ValueError(
            f"plot_saturation: shade_below names panels that do not exist: {sorted(unknown)}"
        )
    u = logit.detach().cpu().double()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 3.9), squeeze=False, constrained_layout=True
    )
    for ax, (title, curves) in zip(axes[0], panels.items(), strict=True):
        for label, values in curves.items():
            v = values.detach().cpu().double()
            if v.shape != u.shape:
                raise ValueError(
                    f"plot_saturation: curve {label!r} must have the logit's shape "
                    f"{tuple(u.shape)}; got {tuple(v.shape)}"
                )
            ax.semilogy(u.numpy(), v.numpy(), label=label)
        if shade_below is not None and title in shade_below:
            ax.axvspan(float(u.min()), float(shade_below[title]), color="0.9", zorder=0,
                       label=shade_label)
        ax.set_xlabel("logit of the true class")
        ax.set_ylabel("gradient magnitude (log scale)")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="lower left")
    return fig


def plot_true_class_recovery(curves: dict[str, Tensor]) -> Figure:
    r"""The probability of the true class over gradient-descent steps, one curve per loss.

    Each entry of ``curves`` (label to a 1-D tensor, one value per step) starts from
    the same confidently wrong prediction; the y axis is logarithmic.
    """
    if not curves:
        raise ValueError("plot_true_class_recovery: curves must hold at least one curve")
    fig, ax = plt.subplots(figsize=(6.5, 3.9), constrained_layout=True)
    for label, values in curves.items():
        v = values.detach().cpu().double()
        ax.semilogy(range(v.numel()), v.numpy(), label=label)
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("probability of the true class (log scale)")
    ax.set_title("Recovering from a confidently wrong prediction")
    ax.legend(fontsize=9)
    return fig


def plot_twin_training(
    losses: dict[str, list[float]], max_param_diff: list[float],
    reference: dict[str, float] | None = None,
) -> Figure:
    r"""Two models trained side by side: their losses, and how far their parameters drift apart.

    Left: the training loss of each model (label to one value per step). Right: the
    largest absolute difference between corresponding parameters after each step,
    :math:`\max |\theta^{(a)} - \theta^{(b)}|`, on a logarithmic axis spanning at
    least a decade either side of the data (exact zeros are drawn at the bottom).
    ``reference`` adds labelled horizontal lines, e.g. the float32 spacing of the
    parameters, to read the differences against.
    """
    if not losses:
        raise ValueError("plot_twin_training: losses must hold at least one curve")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.7), constrained_layout=True)
    styles = ["-", "--", ":", "-."]
    for i, (label, values) in enumerate(losses.items()):
        left.plot(range(1, len(values) + 1), values, linestyle=styles[i % len(styles)],
                  linewidth=2.5 - i, label=label)
    left.set_xlabel("SGD step")
    left.set_ylabel("training loss")
    left.set_title("Training loss")
    left.legend(fontsize=9)
    diffs = torch.tensor(max_param_diff, dtype=torch.float64)
    levels = [float(v) for v in diffs[diffs > 0]] + list((reference or {}).values())
    levels = [v for v in levels if v > 0]
    low = min(levels) / 10 if levels else 1e-12
    high = max(levels) * 10 if levels else 1e-10
    right.semilogy(range(1, diffs.numel() + 1), diffs.clamp_min(low).numpy(), marker=".",
                   color="tab:purple", label="max |difference|")
    for i, (label, value) in enumerate((reference or {}).items()):
        right.axhline(value, color="0.4", linestyle=styles[(i + 1) % len(styles)], label=label)
    right.set_ylim(low, high)
    right.set_xlabel("SGD step")
    right.set_ylabel("max |parameter difference| (log scale)")
    right.set_title("How far apart the two models are")
    if reference:
        right.legend(fontsize=8, loc="upper left")
    return fig


# --- figures of chapter 09 (MNIST from scratch)

def _ch09_grid(count: int, ncols: int, size: float = 1.15) -> tuple[Figure, list]:
    """A grid of image axes, ``count`` cells in rows of ``ncols``, ticks off."""
    ncols = max(1, min(ncols, count))
    nrows = -(-count // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, 1.25 * size * nrows),
                             squeeze=False)
    flat = list(axes.flat)
    for ax in flat:
        ax.set_axis_off()
    return fig, flat


def plot_digits(
    images: Tensor,
    titles: list[str] | None = None,
    wrong: list[bool] | Tensor | None = None,
    ncols: int = 8,
    title: str | None = None,
) -> Figure:
    """Show 28x28 images in a grid, each with its title; titles of ``wrong`` ones in red.

    ``images`` has shape ``(N, 28, 28)`` or ``(N, 784)`` (any dtype; shown in grey,
    ink dark on white).
    """
    pictures = images.detach().to("cpu", torch.float32).reshape(images.shape[0], 28, 28)
    fig, axes = _ch09_grid(pictures.shape[0], ncols)
    for i, picture in enumerate(pictures):
        ax = axes[i]
        ax.imshow(picture.numpy(), cmap="gray_r")
        if titles is not None:
            bad = wrong is not None and bool(wrong[i])
            ax.set_title(titles[i], fontsize=8, color="tab:red" if bad else "black")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history, target: float | None = None, reference_error: float | None = None,
                 title: str | None = None) -> Figure:
    """Loss per minibatch and per epoch (left) and test accuracy per epoch (right).

    ``history`` is a :class:`byhand.train.History`. ``target`` draws a horizontal line
    at that accuracy; ``reference_error`` another at ``1 - reference_error`` (a
    published result to compare with).
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = list(range(1, history.epochs + 1))
    steps = len(history.step_loss)
    if steps:
        per_epoch = steps / history.epochs
        ax_loss.plot([(k + 1) / per_epoch for k in range(steps)], history.step_loss,
                     color="tab:blue", alpha=0.25, lw=0.6, label="training minibatch")
    ax_loss.plot(epochs, history.train_loss, "o-", color="tab:blue", label="training (epoch mean)")
    ax_loss.plot(epochs, history.test_loss, "s-", color="tab:orange", label="test")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.set_title("Loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * a for a in history.test_accuracy], "s-", color="tab:orange",
                label="test accuracy")
    if target is not None:
        ax_acc.axhline(100 * target, color="gray", ls="--", lw=1, label=f"{100 * target:.1f}%")
    if reference_error is not None:
        ax_acc.axhline(100 * (1 - reference_error), color="tab:green", ls=":", lw=1.5,
                       label=f"published: {100 * reference_error:.1f}% error")
    levels = [100 * a for a in history.test_accuracy]
    levels += [100 * target] if target is not None else []
    levels += [100 * (1 - reference_error)] if reference_error is not None else []
    pad = 0.08 * (max(levels) - min(levels) or 1.0)
    ax_acc.set_ylim(min(levels) - pad, max(levels) + pad)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("Test accuracy")
    ax_acc.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(matrix: Tensor, classes: tuple[str, ...] | list[str],
                   title: str = "Confusion matrix") -> Figure:
    """Counts ``matrix[t, p]`` of true class ``t`` predicted as ``p``, written in each cell.

    Colours follow :math:`\\log(1 + \\text{count})` so that the few mistakes off the
    diagonal stay visible next to the thousands of correct answers on it.
    """
    counts = matrix.detach().to("cpu", torch.int64)
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    image = ax.imshow(torch.log1p(counts.double()).numpy(), cmap="Blues")
    n = counts.shape[0]
    big = float(torch.log1p(counts.double()).max()) * 0.6
    for t in range(n):
        for p in range(n):
            value = int(counts[t, p])
            if value:
                dark = float(torch.log1p(torch.tensor(float(value)))) > big
                ax.text(p, t, str(value), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    ax.set_xticks(range(n), classes, rotation=45 if max(map(len, classes)) > 2 else 0,
                  ha="right" if max(map(len, classes)) > 2 else "center")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    fig.tight_layout()
    return fig


def plot_step_differences(differences: dict[str, list[float] | Tensor],
                          title: str = "Manual against autograd, step by step") -> Figure:
    """Per-step differences between two training runs on a log scale, one colour per entry.

    Each step's difference is a dot and the largest difference so far a line. A log
    scale cannot show an exact 0, so those steps have no dot; the legend counts them.
    """
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, values in differences.items():
        series = torch.as_tensor(values, dtype=torch.float64).cpu()
        steps = torch.arange(1, len(series) + 1)
        exact = int((series == 0).sum())
        running = torch.cummax(series, 0).values
        shown = running > 0
        (line,) = ax.plot(steps[shown].numpy(), running[shown].numpy(), lw=1.5,
                          label=f"{label} ({exact} of {len(series)} steps exactly 0)")
        nonzero = series > 0
        ax.plot(steps[nonzero].numpy(), series[nonzero].numpy(), ".", ms=2.5, alpha=0.5,
                color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("max |manual - autograd|")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    return fig


def plot_loss_curves(curves: dict[str, list[float] | Tensor], title: str = "Training loss",
                     ylim: tuple[float, float] | None = None) -> Figure:
    """Training loss per step for several runs, on a log scale.

    Losses that are ``inf`` or ``nan`` cannot be drawn as a line: each run that has
    them gets a row of ticks along the top of the plot, one tick per such step, and
    its legend entry says from which step on they occur.
    """
    from matplotlib.transforms import blended_transform_factory

    fig, ax = plt.subplots(figsize=(9, 4.6))
    top = blended_transform_factory(ax.transData, ax.transAxes)
    row = 0
    for label, values in curves.items():
        series = torch.as_tensor(values, dtype=torch.float64).cpu()
        bad = (~torch.isfinite(series)).nonzero().flatten()
        name = label
        if len(bad):
            first = int(bad[0])
            name = f"{label}: {float(series[first])} from step {first + 1} ({len(bad)} steps)"
        (line,) = ax.plot(range(1, len(series) + 1), series.numpy(), lw=1.2, label=name)
        if len(bad):
            row += 1
            ax.plot((bad + 1).tolist(), [1 - 0.035 * row] * len(bad), "|", ms=6,
                    color=line.get_color(), transform=top)
    ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    elif row:
        low, high = ax.get_ylim()
        ax.set_ylim(low, high * (high / low) ** (0.05 * row))  # room for the ticks on top
    ax.set_xlabel("training step")
    ax.set_ylabel("minibatch cross-entropy")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    return fig
