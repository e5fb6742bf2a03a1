"""Figures of the part "What the losses compute" (chapter 1): one function per figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .style import phone_legible


def plot_loss_runaway(nll_losses: list[float], ce_losses: list[float]) -> Figure:
    r"""Training curves of the same ``Linear`` layer under two losses, one panel each.

    Top: ``NLLLoss`` fed the raw outputs :math:`z_{nq}`, whose loss
    :math:`-\frac1N\sum_n z_{n y_n}` is linear in the parameters and falls without
    bound. Bottom: ``CrossEntropyLoss`` on the same outputs, which stays
    :math:`\ge 0`. The panels are stacked and share the step axis, so that the figure
    is 5 in wide and its labels stay legible at a phone's width; a dashed line marks
    zero in both.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.0, 5.4), sharex=True, constrained_layout=True)
    panels = (
        (top, nll_losses, "NLLLoss on the raw outputs", "tab:red"),
        (bottom, ce_losses, "CrossEntropyLoss", "tab:blue"),
    )
    for ax, losses, title, colour in panels:
        ax.plot(range(len(losses)), losses, color=colour)
        ax.axhline(0.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_ylabel("training loss")
        ax.set_title(title)
    bottom.set_xlabel("SGD step")
    return phone_legible(fig)


def plot_ce_of_probabilities(p: Tensor, ce_of_probs: dict[str, Tensor]) -> Figure:
    r"""What ``CrossEntropyLoss`` returns when handed probabilities, against :math:`-\log p`.

    ``p`` is the probability given to the target class (the x axis). The reference
    curve is the true cross-entropy :math:`-\log p`; each entry of ``ce_of_probs``
    (label to values at ``p``) is one curve of :math:`\operatorname{CE}` applied to the
    probability vector as if it were logits, i.e. :math:`-p_y + \log\sum_k e^{p_k}`.
    The legend sits below the axes, off the data; the loss axis starts at zero. The
    figure is 5 in wide, so that its labels stay legible at a phone's width.
    """
    x = torch.as_tensor(p).detach().cpu().double()
    fig, ax = plt.subplots(figsize=(5.0, 4.4), constrained_layout=True)
    ax.plot(x.numpy(), (-x.log()).numpy(), color="black", label=r"true loss $-\log p_y$")
    for label, values in ce_of_probs.items():
        ax.plot(x.numpy(), values.detach().cpu().double().numpy(), label=label)
    ax.set_xlabel("probability given to the target class, $p_y$")
    ax.set_ylabel("loss")
    ax.set_ylim(bottom=0.0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
    return phone_legible(fig)

