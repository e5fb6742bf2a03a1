"""The figures of chapter 01 (what CE and NLL compute) draw what they are given."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from byhand.figures.what_losses_compute import plot_ce_of_probabilities, plot_loss_runaway, plot_weight_grads


def test_weight_grads_one_panel_per_loss_with_every_entry_annotated():
    nll = torch.zeros(4, 2)
    nll[3] = torch.tensor([-1.0, -2.0])
    ce = torch.arange(8.0).view(4, 2) - 4.0
    fig = plot_weight_grads({"NLLLoss": nll, "CrossEntropyLoss": ce}, target=3)
    assert len(fig.axes) == 2
    for ax, grad in zip(fig.axes, (nll, ce), strict=True):
        assert len(ax.texts) == grad.numel()
        assert ax.get_title()
        assert ax.get_xlabel() and ax.get_ylabel()
        assert "(target)" in ax.get_yticklabels()[3].get_text()
        assert ax.images[0].get_array().shape == (4, 2)
    assert fig.axes[0].texts[7].get_text() == "-2.000"
    assert fig.get_figwidth() <= 7.0


def test_weight_grads_rejects_nothing_to_draw():
    with pytest.raises(ValueError, match="at least one"):
        plot_weight_grads({}, target=0)


def test_loss_runaway_two_panels_with_curve_and_zero_line():
    nll = [-0.5 * k for k in range(10)]
    ce = [1.0 / (k + 1) for k in range(10)]
    fig = plot_loss_runaway(nll, ce)
    assert len(fig.axes) == 2
    for ax, losses in zip(fig.axes, (nll, ce), strict=True):
        assert len(ax.lines) == 2  # the curve and the zero line
        assert list(ax.lines[0].get_ydata()) == losses
        assert ax.get_xlabel() == "SGD step"
        assert ax.get_title()
    assert fig.axes[0].get_ylabel() == "training loss"
    assert fig.get_figwidth() <= 7.0


def test_ce_of_probabilities_reference_curve_plus_one_per_entry():
    p = torch.linspace(0.05, 1.0, 20)
    curves = {"C = 4": torch.ones(20), "C = 10": 2 * torch.ones(20)}
    fig = plot_ce_of_probabilities(p, curves)
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    torch.testing.assert_close(
        torch.as_tensor(ax.lines[0].get_ydata()), -p.double().log()
    )
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[1:] == ["C = 4", "C = 10"]
    assert ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_ylim()[0] == 0.0
    # the legend hangs below the axes, off the data
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.y1 <= ax.get_window_extent().y0
    assert fig.get_figwidth() <= 7.0
