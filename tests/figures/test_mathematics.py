"""The figures of chapters 02-04: each function returns a labelled Figure and rejects bad input."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

import byhand
from byhand.figures import mathematics as plots


def visible_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_plot_jacobian_patterns_draws_one_panel_per_jacobian():
    x = torch.randn(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    panels = [
        ("diagonal", torch.diag(1 - torch.tanh(x) ** 2)),
        ("row", torch.ones(1, 5)),
        ("softmax", byhand.softmax_jacobian(x)),
    ]
    fig = plots.plot_jacobian_patterns(panels, title="patterns")
    try:
        assert isinstance(fig, Figure)
        axes = visible_axes(fig)
        assert [ax.get_title() for ax in axes] == ["diagonal", "row", "softmax"]
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in axes)
        assert fig.get_suptitle() == "patterns"
        assert fig.get_figwidth() <= 5.2  # shown at about 2/3 size on a phone, 12-pt labels stay legible
        # zero maps to the middle of a symmetric colour range, so it is drawn white
        image = axes[0].images[0]
        low, high = image.get_clim()
        assert low == -high
    finally:
        plt.close(fig)


def test_plot_jacobian_patterns_keeps_few_ticks_on_a_large_jacobian():
    fig = plots.plot_jacobian_patterns([("12 x 12", torch.eye(12)), ("row", torch.ones(1, 8))])
    try:
        ax, row = visible_axes(fig)
        assert list(row.get_yticks()) == [0]
        assert list(ax.get_xticks()) == [0, 3, 6, 9]
        assert not [a for a in fig.axes if a.get_label() == "<colorbar>"]
    finally:
        plt.close(fig)


def test_plot_jacobian_patterns_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_jacobian_patterns([])
    with pytest.raises(ValueError, match="2-D"):
        plots.plot_jacobian_patterns([("3-D", torch.zeros(2, 2, 2))])
    plt.close("all")


def test_plot_softmax_jacobian_shows_probabilities_and_annotated_heat_map():
    logits = torch.tensor([2.0, 1.0, 0.1, -1.0])
    fig = plots.plot_softmax_jacobian(logits)
    try:
        bars, heat = visible_axes(fig)
        heights = [patch.get_height() for patch in bars.patches]
        torch.testing.assert_close(torch.tensor(heights, dtype=torch.float64),
                                   byhand.softmax(logits.double()))
        assert bars.get_ylabel() and heat.get_xlabel() and heat.get_title()
        shown = torch.tensor(heat.images[0].get_array().data)
        torch.testing.assert_close(shown, byhand.softmax_jacobian(logits.double()))
        assert len(heat.texts) == 16  # one annotation per entry
        assert fig.get_figwidth() <= 7  # stacked panels, sized for the text column
        assert bars.get_position().y0 > heat.get_position().y0  # the bars above the heat map
    finally:
        plt.close(fig)


def test_plot_softmax_jacobian_rejects_batches():
    with pytest.raises(ValueError, match="1-D"):
        plots.plot_softmax_jacobian(torch.zeros(2, 3))


def test_plot_vjp_timing_draws_one_line_per_method():
    fig = plots.plot_vjp_timing([10, 100, 1000], {"a": [1e-5, 1e-4, 1e-2], "b": [1e-5] * 3})
    try:
        (ax,) = visible_axes(fig)
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
        assert list(ax.get_lines()[0].get_ydata()) == [1e-5, 1e-4, 1e-2]
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is None and len(fig.legends) == 1  # the legend is off the axes
        assert fig.get_figwidth() <= 7
    finally:
        plt.close(fig)


def test_plot_vjp_timing_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one time per size"):
        plots.plot_vjp_timing([10, 100], {"a": [1e-5]})


def test_plot_log_softmax_error_clamps_and_marks_failures():
    gaps = torch.linspace(1, 5, 5)
    errors = {"exact": torch.zeros(5), "breaks": torch.tensor([1e-7, 1e-6, 1e-3, float("inf"),
                                                               float("nan")])}
    fig = plots.plot_log_softmax_error({"low": (gaps, errors), "top": (gaps[:2], {
        "exact": torch.zeros(2)})}, eps=2.0**-23, floor=1e-10)
    try:
        low, top = visible_axes(fig)
        assert low.get_title() == "low" and top.get_title() == "top"
        assert low.get_yscale() == "log"
        labels = [line.get_label() for line in low.get_lines()]
        assert labels == ["exact", "breaks", "breaks: inf or NaN", "unit roundoff"]
        exact_line, breaks_line, crosses, _ = low.get_lines()
        assert min(exact_line.get_ydata()) == 1e-10  # zeros drawn at the floor
        assert len(breaks_line.get_xdata()) == 3 and len(crosses.get_xdata()) == 2
        assert low.get_ylabel()
        assert low.get_legend() is None and len(fig.legends) == 1  # one legend, below the panels
        legend_labels = [text.get_text() for text in fig.legends[0].get_texts()]
        assert legend_labels == ["exact", "breaks", "breaks: inf or NaN", "unit roundoff"]
        assert fig.get_figwidth() <= 7 and low.get_position().y0 > top.get_position().y0
    finally:
        plt.close(fig)


def test_phone_legible_raises_small_text_and_ticks_only() -> None:
    import matplotlib.pyplot as plt

    from byhand.figures.style import PHONE_MIN_POINTS, phone_legible

    fig, ax = plt.subplots(figsize=(4.0, 3.0))  # shown at natural size: 12 pt = 16 px
    small = ax.set_title("small", fontsize=8)
    large = ax.set_xlabel("large", fontsize=16)
    assert phone_legible(fig) is fig
    assert small.get_fontsize() == PHONE_MIN_POINTS and large.get_fontsize() == 16
    assert ax.xaxis.get_major_ticks()[0].label1.get_fontsize() == PHONE_MIN_POINTS
    plt.close(fig)
