"""The figures of chapter 09: each function returns a Figure with the expected content."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.figure import Figure

from byhand.plots import (
    plot_confusion,
    plot_digits,
    plot_history,
    plot_loss_curves,
    plot_step_differences,
)
from byhand.train import History


def test_plot_digits_titles_and_wrong_in_red():
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    fig = plot_digits(images, titles=list("abcde"), wrong=[False, True, False, False, True],
                      ncols=3, title="digits")
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5 and len(fig.axes) == 6
    assert [ax.get_title() for ax in shown] == list("abcde")
    red = matplotlib.colors.to_rgba("tab:red")
    in_red = [matplotlib.colors.to_rgba(ax.title.get_color()) == red for ax in shown]
    assert in_red == [False, True, False, False, True]


def test_plot_digits_accepts_flat_rows():
    fig = plot_digits(torch.rand(3, 784))
    assert sum(1 for ax in fig.axes if ax.images) == 3


def test_plot_history_draws_loss_and_accuracy():
    history = History(train_loss=[0.5, 0.3], test_loss=[0.4, 0.35],
                      test_accuracy=[0.95, 0.97], seconds=[1.0, 1.0],
                      step_loss=[0.9, 0.6, 0.4, 0.3])
    fig = plot_history(history, target=0.98, reference_error=0.016, title="run")
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_yscale() == "log"
    assert "accuracy" in ax_acc.get_ylabel()
    accuracy = ax_acc.lines[0].get_ydata()
    assert list(accuracy) == pytest.approx([95.0, 97.0])
    levels = [line.get_ydata()[0] for line in ax_acc.lines[1:]]
    assert levels == pytest.approx([98.0, 98.4])
    low, high = ax_acc.get_ylim()
    assert low < 95.0 and high > 98.4


def test_plot_confusion_writes_the_counts():
    matrix = torch.tensor([[5, 1], [0, 7]])
    fig = plot_confusion(matrix, ("cat", "dog"))
    ax = fig.axes[0]
    assert sorted(text.get_text() for text in ax.texts) == ["1", "5", "7"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"


def test_plot_step_differences_survives_zeros():
    fig = plot_step_differences({"loss": [0.0, 1e-8, 2e-8], "params": torch.tensor([1e-9, 0.0])})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 4
    running, dots = ax.lines[0], ax.lines[1]
    assert list(running.get_ydata()) == [1e-8, 2e-8] and list(dots.get_xdata()) == [2, 3]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["loss (1 of 3 steps exactly 0)", "params (1 of 2 steps exactly 0)"]


def test_plot_loss_curves_marks_non_finite_steps():
    curves = {"fine": [2.3, 1.0, 0.5], "broken": [2.3, float("inf"), float("nan")]}
    fig = plot_loss_curves(curves, title="variants")
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[0] == "fine"
    assert labels[1].startswith("broken: inf from step 2 (2 steps)")
    ticks = [line for line in ax.lines if line.get_marker() == "|"]
    assert len(ticks) == 1 and list(ticks[0].get_xdata()) == [2, 3]
