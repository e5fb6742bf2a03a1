"""Figures of the part "What the losses compute" (chapter 1): one function per figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor


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

