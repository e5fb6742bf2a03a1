"""Figures of the part "A network trained by hand" (chapters 8-9): one function per figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .style import phone_legible


def plot_relu_subgradients(derivative_at_zero: dict[str, float], limit: float = 2.0) -> Figure:
    r"""ReLU and its derivative, with the value each formulation's backward uses at 0.

    Left: :math:`y = \max(x, 0)` on :math:`[-\text{limit}, \text{limit}]`. Right: the
    derivative :math:`[x > 0]`, drawn as two open-ended pieces, and one marker at
    :math:`x = 0` per entry of ``derivative_at_zero`` (label to the gradient that
    formulation's autograd backward returns at exactly 0). The legend sits below
    the panels, so no marker is hidden.
    """
    if not derivative_at_zero:
        raise ValueError("plot_relu_subgradients: derivative_at_zero must hold at least one value")
    if not limit > 0:
        raise ValueError(f"plot_relu_subgradients: limit must be positive; got {limit}")
    x = torch.linspace(-limit, limit, 401, dtype=torch.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(5.6, 4.4), layout="constrained")
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
    right.set_title("Its derivative")
    fig.legend(loc="outside lower center", ncol=1, fontsize=11)
    return phone_legible(fig)


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
    ``shade_label`` (for instance where the true class gets less than 1%). Panels are
    stacked, one per row, each with its legend below the axes and off the curves.
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
        len(panels), 1, figsize=(5.6, 4.6 * len(panels)), squeeze=False, layout="constrained"
    )
    for ax, (title, curves) in zip(axes[:, 0], panels.items(), strict=True):
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
        ax.set_ylabel("gradient magnitude")
        ax.set_title(title)
        ax.legend(fontsize=11, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    return phone_legible(fig)


def plot_true_class_recovery(curves: dict[str, Tensor]) -> Figure:
    r"""The probability of the true class over gradient-descent steps, one curve per loss.

    Each entry of ``curves`` (label to a 1-D tensor, one value per step) starts from
    the same confidently wrong prediction; the y axis is logarithmic.
    """
    if not curves:
        raise ValueError("plot_true_class_recovery: curves must hold at least one curve")
    fig, ax = plt.subplots(figsize=(5.6, 4.2), layout="constrained")
    for label, values in curves.items():
        v = values.detach().cpu().double()
        ax.semilogy(range(v.numel()), v.numpy(), label=label)
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("probability of the true class")
    ax.set_title("Recovering from a confidently wrong prediction")
    fig.legend(loc="outside lower center", ncol=len(curves), fontsize=11)
    return phone_legible(fig)


def plot_twin_training(
    losses: dict[str, list[float]], max_param_diff: list[float],
    reference: dict[str, float] | None = None,
) -> Figure:
    r"""Two models trained side by side: their losses, and how far their parameters drift apart.

    Top: the training loss of each model (label to one value per step). Bottom: the
    largest absolute difference between corresponding parameters after each step,
    :math:`\max |\theta^{(a)} - \theta^{(b)}|`, on a logarithmic axis spanning at
    least a decade either side of the data (exact zeros are drawn at the bottom).
    ``reference`` adds labelled horizontal lines, e.g. the float32 spacing of the
    parameters, to read the differences against.
    """
    if not losses:
        raise ValueError("plot_twin_training: losses must hold at least one curve")
    fig, (left, right) = plt.subplots(2, 1, figsize=(5.6, 7.6), layout="constrained")
    styles = ["-", "--", ":", "-."]
    for i, (label, values) in enumerate(losses.items()):
        left.plot(range(1, len(values) + 1), values, linestyle=styles[i % len(styles)],
                  linewidth=2.5 - i, label=label)
    left.set_xlabel("SGD step")
    left.set_ylabel("training loss")
    left.set_title("Training loss")
    left.legend(fontsize=11)
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
    right.set_ylabel("max |difference|")
    right.set_title("How far apart the two models' parameters are")
    if reference:
        right.legend(fontsize=11, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return phone_legible(fig)




def _legend_below(ax, ncol: int = 1) -> None:
    """The legend under the axes, outside the data, one entry per row (phone width)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=ncol, frameon=False)


def _ch09_grid(count: int, ncols: int, size: float = 1.15) -> tuple[Figure, list]:
    """A grid of image axes, ``count`` cells in rows of ``ncols`` (at most 6), ticks off."""
    ncols = max(1, min(ncols, count, 6))
    nrows = -(-count // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, 1.3 * size * nrows),
                             squeeze=False, constrained_layout=True)
    flat = list(axes.flat)
    for ax in flat:
        ax.set_axis_off()
    return fig, flat


def plot_digits(
    images: Tensor,
    titles: list[str] | None = None,
    wrong: list[bool] | Tensor | None = None,
    ncols: int = 5,
    title: str | None = None,
) -> Figure:
    """Show 28x28 images in a grid of at most 6 columns; titles of ``wrong`` ones in red.

    ``images`` has shape ``(N, 28, 28)`` or ``(N, 784)`` (any dtype; shown in grey,
    ink dark on white). Keep titles short: a cell is about 1.15 in wide.
    """
    pictures = images.detach().to("cpu", torch.float32).reshape(images.shape[0], 28, 28)
    fig, axes = _ch09_grid(pictures.shape[0], ncols)
    for i, picture in enumerate(pictures):
        ax = axes[i]
        ax.imshow(picture.numpy(), cmap="gray_r")
        if titles is not None:
            bad = wrong is not None and bool(wrong[i])
            ax.set_title(titles[i], fontsize=11, color="tab:red" if bad else "black")
    if title:
        fig.suptitle(title)
    return phone_legible(fig)


def plot_history(history, target: float | None = None, reference_error: float | None = None,
                 title: str | None = None) -> Figure:
    """Loss per minibatch and per epoch (top) and validation accuracy per epoch (bottom).

    ``history`` is a :class:`byhand.train.History`. ``target`` draws a horizontal line
    at that accuracy; ``reference_error`` another at ``1 - reference_error`` (a
    published result to compare with). Legends sit below each panel, off the data.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(5.6, 8.0), constrained_layout=True)
    epochs = list(range(1, history.epochs + 1))
    steps = len(history.step_loss)
    if steps:
        per_epoch = steps / history.epochs
        ax_loss.plot([(k + 1) / per_epoch for k in range(steps)], history.step_loss,
                     color="tab:blue", alpha=0.25, lw=0.6, label="training minibatch")
    ax_loss.plot(epochs, history.train_loss, "o-", color="tab:blue", label="training (epoch mean)")
    ax_loss.plot(epochs, history.valid_loss, "s-", color="tab:orange", label="validation")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.set_title("Loss")
    _legend_below(ax_loss, ncol=2)
    ax_acc.plot(epochs, [100 * a for a in history.valid_accuracy], "s-", color="tab:orange",
                label="validation accuracy")
    if target is not None:
        ax_acc.axhline(100 * target, color="gray", ls="--", lw=1, label=f"{100 * target:.1f}%")
    if reference_error is not None:
        ax_acc.axhline(100 * (1 - reference_error), color="tab:green", ls=":", lw=1.5,
                       label=f"published: {100 * reference_error:.1f}% error")
    levels = [100 * a for a in history.valid_accuracy]
    levels += [100 * target] if target is not None else []
    levels += [100 * (1 - reference_error)] if reference_error is not None else []
    pad = 0.08 * (max(levels) - min(levels) or 1.0)
    ax_acc.set_ylim(min(levels) - pad, max(levels) + pad)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.set_title("Validation accuracy")
    _legend_below(ax_acc)
    if title:
        fig.suptitle(title)
    return phone_legible(fig)


def plot_confusion(matrix: Tensor, classes: tuple[str, ...] | list[str],
                   title: str = "Confusion matrix") -> Figure:
    """Counts ``matrix[t, p]`` of true class ``t`` predicted as ``p``, written in each cell.

    Colours follow :math:`\\log(1 + \\text{count})` so that the few mistakes off the
    diagonal stay visible next to the thousands of correct answers on it.
    """
    counts = matrix.detach().to("cpu", torch.int64)
    fig, ax = plt.subplots(figsize=(5.6, 5.6), constrained_layout=True)
    ax.imshow(torch.log1p(counts.double()).numpy(), cmap="Blues")
    n = counts.shape[0]
    big = float(torch.log1p(counts.double()).max()) * 0.6
    for t in range(n):
        for p in range(n):
            value = int(counts[t, p])
            if value:
                dark = float(torch.log1p(torch.tensor(float(value)))) > big
                ax.text(p, t, str(value), ha="center", va="center", fontsize=10.5,
                        color="white" if dark else "black")
    ax.set_xticks(range(n), classes, rotation=45 if max(map(len, classes)) > 2 else 0,
                  ha="right" if max(map(len, classes)) > 2 else "center")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return phone_legible(fig)


def plot_step_differences(differences: dict[str, list[float] | Tensor],
                          title: str = "Manual against autograd, step by step") -> Figure:
    """Per-step differences between two training runs on a log scale, one colour per entry.

    Each step's difference is a dot and the largest difference so far a line. A log
    scale cannot show an exact 0, so those steps have no dot; the legend (below the
    axes) counts them.
    """
    fig, ax = plt.subplots(figsize=(5.6, 5.6), constrained_layout=True)
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
    _legend_below(ax)
    return phone_legible(fig)


def plot_loss_curves(curves: dict[str, list[float] | Tensor], title: str = "Training loss",
                     ylim: tuple[float, float] | None = None) -> Figure:
    """Training loss per step for several runs, on a log scale.

    Losses that are ``inf`` or ``nan`` cannot be drawn as a line: each run that has
    them gets a row of ticks along the top of the plot, one tick per such step, and
    its legend entry (below the axes) says from which step on they occur.
    """
    from matplotlib.transforms import blended_transform_factory

    fig, ax = plt.subplots(figsize=(5.6, 7.6), constrained_layout=True)
    top = blended_transform_factory(ax.transData, ax.transAxes)
    row = 0
    for label, values in curves.items():
        series = torch.as_tensor(values, dtype=torch.float64).cpu()
        bad = (~torch.isfinite(series)).nonzero().flatten()
        name = label
        if len(bad):
            first = int(bad[0])
            name = f"{label}:\n{float(series[first])} from step {first + 1} ({len(bad)} steps)"
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
    _legend_below(ax)
    return phone_legible(fig)


def plot_time_to_accuracy(histories: dict[str, object], target: float) -> Figure:
    """Seed 004's four runs: loss per epoch (top), validation accuracy against time (bottom).

    ``histories`` maps a run's name to its :class:`byhand.train.History`. The top panel
    draws each run's mean training loss per epoch (log-log: full-batch runs last many
    epochs, minibatch runs few); the bottom one its validation accuracy after each
    epoch against the training seconds spent so far, with the ``target`` accuracy as
    a dashed line. Runs of the same schedule share a colour; the autograd twin is
    dashed with hollow markers. Legend below, off the data.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(5.6, 8.2), constrained_layout=True)
    colours = {}
    for name, history in histories.items():
        schedule = name.split(",")[0]
        colour = colours.setdefault(schedule, f"C{len(colours)}")
        autograd = "autograd" in name
        style = {"color": colour, "ls": "--" if autograd else "-", "marker": "o", "ms": 4,
                 "mfc": "none" if autograd else colour}
        epochs = list(range(1, history.epochs + 1))
        seconds = torch.tensor(history.seconds, dtype=torch.float64).cumsum(0).tolist()
        ax_loss.plot(epochs, history.train_loss, label=name, **style)
        ax_acc.plot(seconds, [100 * a for a in history.valid_accuracy], label=name, **style)
    ax_acc.axhline(100 * target, color="gray", ls=":", lw=1.2)
    for ax in (ax_loss, ax_acc):
        ax.set_xscale("log")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (epoch mean)")
    ax_loss.set_title("Loss per epoch")
    ax_acc.set_xlabel("training seconds")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.set_title(f"Time to {100 * target:.0f}% validation accuracy (dotted)")
    _legend_below(ax_acc)
    return phone_legible(fig)
