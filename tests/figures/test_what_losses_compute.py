"""The figures of chapter 01 (what CE and NLL compute) draw what they are given."""

import matplotlib

matplotlib.use("Agg")

import torch

from byhand.figures.what_losses_compute import plot_ce_of_probabilities, plot_loss_runaway


def test_loss_runaway_two_stacked_panels_with_curve_and_zero_line():
    nll = [-0.5 * k for k in range(10)]
    ce = [1.0 / (k + 1) for k in range(10)]
    fig = plot_loss_runaway(nll, ce)
    assert len(fig.axes) == 2
    top, bottom = fig.axes
    assert top.get_position().y0 > bottom.get_position().y1  # stacked, one column
    for ax, losses in zip(fig.axes, (nll, ce), strict=True):
        assert len(ax.lines) == 2  # the curve and the zero line
        assert list(ax.lines[0].get_ydata()) == losses
        assert ax.get_ylabel() == "training loss"
        assert ax.get_title()
    assert bottom.get_xlabel() == "SGD step"
    assert fig.get_figwidth() <= 5.0


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
    assert fig.get_figwidth() <= 5.0
