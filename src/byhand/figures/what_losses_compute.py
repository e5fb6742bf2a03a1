"""Figures of the part "What the losses compute" (chapter 1): one function per figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor


def plot_weight_grads(grads: dict[str, Tensor], target: int) -> Figure:
    r"""Heat maps of a ``Linear`` layer's ``weight.grad``, one panel per loss, side by side.

    Each panel shows :math:`\partial L/\partial W_{qp}` for one loss, with the output
    (class) :math:`q` down the rows and the input feature :math:`p` across, each cell
    annotated with its value; the row of the target class ``target`` is labelled. All
    panels share one symmetric colour scale, so a zero is white in every panel;
    annotations on dark cells are drawn in white. The figure is at most 7 in wide.
    """
    if not grads:
        raise ValueError("plot_weight_grads: grads must hold at least one gradient")
    mats = {title: g.detach().cpu().double() for title, g in grads.items()}
    vmax = max(float(m.abs().max()) for m in mats.values()) or 1.0
    fig, axes = plt.subplots(
        1, len(mats), figsize=(min(7.0, 3.5 * len(mats)), 3.4), squeeze=False, constrained_layout=True
    )
    for ax, (title, m) in zip(axes[0], mats.items(), strict=True):
        ax.imshow(m.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        for q in range(m.shape[0]):
            for p in range(m.shape[1]):
                value = float(m[q, p])
                colour = "white" if abs(value) > 0.6 * vmax else "black"
                ax.text(p, q, f"{value:+.3f}", ha="center", va="center", fontsize=10, color=colour)
        ax.set_xticks(range(m.shape[1]), [f"p = {p}" for p in range(m.shape[1])])
        ax.set_yticks(
            range(m.shape[0]),
            [f"q = {q}" + (" (target)" if q == target else "") for q in range(m.shape[0])],
        )
        ax.set_xlabel("input feature $p$")
        ax.set_ylabel("output class $q$")
        ax.set_title(title)
    return fig


def plot_loss_runaway(nll_losses: list[float], ce_losses: list[float]) -> Figure:
    r"""Training curves of the same ``Linear`` layer under two losses, one panel each.

    Left: ``NLLLoss`` fed the raw outputs :math:`z_{nq}`, whose loss
    :math:`-\frac1N\sum_n z_{n y_n}` is linear in the parameters and falls without
    bound. Right: ``CrossEntropyLoss`` on the same outputs, which stays
    :math:`\ge 0`. A dashed line marks zero in both panels; 7 in wide.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 3.4), constrained_layout=True)
    panels = (
        (left, nll_losses, "NLLLoss, raw outputs", "tab:red"),
        (right, ce_losses, "CrossEntropyLoss", "tab:blue"),
    )
    for ax, losses, title, colour in panels:
        ax.plot(range(len(losses)), losses, color=colour)
        ax.axhline(0.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_xlabel("SGD step")
        ax.set_title(title)
    left.set_ylabel("training loss")
    return fig


def plot_ce_of_probabilities(p: Tensor, ce_of_probs: dict[str, Tensor]) -> Figure:
    r"""What ``CrossEntropyLoss`` returns when handed probabilities, against :math:`-\log p`.

    ``p`` is the probability given to the target class (the x axis). The reference
    curve is the true cross-entropy :math:`-\log p`; each entry of ``ce_of_probs``
    (label to values at ``p``) is one curve of :math:`\operatorname{CE}` applied to the
    probability vector as if it were logits, i.e. :math:`-p_y + \log\sum_k e^{p_k}`.
    The legend sits below the axes, off the data; the loss axis starts at zero.
    """
    x = torch.as_tensor(p).detach().cpu().double()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    ax.plot(x.numpy(), (-x.log()).numpy(), color="black", label=r"true loss $-\log p_y$")
    for label, values in ce_of_probs.items():
        ax.plot(x.numpy(), values.detach().cpu().double().numpy(), label=label)
    ax.set_xlabel("probability given to the target class, $p_y$")
    ax.set_ylabel("loss")
    ax.set_ylim(bottom=0.0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
    return fig

