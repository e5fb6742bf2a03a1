"""The figure of the appendix "Half precision": labelled, sized for the column, rejects bad input."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from byhand.figures.appendix import plot_fp16_limits


def test_fp16_limits_two_stacked_panels_with_thresholds_and_float16_max():
    n = torch.tensor([1024, 4096, 16384, 65536])
    numerator = 2.7 * n.double()
    zero = {"a": torch.tensor([0.0, 0.0, 0.0, 1.0]), "b": torch.zeros(4)}
    fig = plot_fp16_limits(n, numerator, n.double(), zero, n_loss_inf=24000, n_grad_zero=65520)
    try:
        top, bottom = fig.axes
        assert fig.get_figwidth() <= 7 and top.get_position().y0 > bottom.get_position().y0
        assert top.get_title() and bottom.get_title() and bottom.get_xlabel()
        assert top.get_ylabel() and bottom.get_ylabel()
        for ax in (top, bottom):
            vertical = [line for line in ax.lines
                        if list(line.get_xdata()) in ([24000, 24000], [65520, 65520])]
            assert len(vertical) == 2
            assert ax.get_legend() is None  # no legend over the data
        horizontal = [line for line in top.lines if list(line.get_ydata()) == [65504.0, 65504.0]]
        assert len(horizontal) == 1
        assert "65,504" in horizontal[0].get_label()
        torch.testing.assert_close(torch.as_tensor(top.lines[0].get_ydata()), numerator)
        drawn = [line for line in bottom.lines if line.get_label() in zero]
        assert [line.get_label() for line in drawn] == ["a", "b"]
        assert list(drawn[0].get_ydata()) == [0.0, 0.0, 0.0, 1.0]
        assert top.get_xscale() == "log" and top.get_yscale() == "log"
        (legend,) = fig.legends
        labels = [text.get_text() for text in legend.get_texts()]
        assert len(labels) == len(set(labels)) == 7  # every line once, shared lines once
    finally:
        plt.close(fig)


def test_fp16_limits_rejects_mismatched_lengths():
    n = torch.tensor([1, 2, 3])
    with pytest.raises(ValueError, match="one value per batch size"):
        plot_fp16_limits(n, torch.ones(3), torch.ones(2), {}, 1, 2)
    with pytest.raises(ValueError, match="one value per batch size"):
        plot_fp16_limits(n, torch.ones(3), torch.ones(3), {"x": torch.ones(4)}, 1, 2)
