"""The chapter-11 figures of byhand.figures.at_scale: what they draw, and bad input."""

import pytest
import torch

from byhand.figures.at_scale import plot_parallel_efficiency, plot_step_for_step


def test_step_for_step_draws_each_curve_with_zeros_on_the_floor() -> None:
    drift = {"float64": torch.tensor([0.0, 1e-17, 3e-17]), "float32": torch.tensor([0.0, 1e-8, 2e-8])}
    fig = plot_step_for_step(drift)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label() in drift]
    assert [line.get_label() for line in lines] == ["float64", "float32"]
    floor = 1e-18
    assert lines[0].get_ydata()[0] == pytest.approx(floor)
    assert lines[1].get_ydata()[2] == pytest.approx(2e-8)
    assert fig.get_size_inches()[0] <= 7
    with pytest.raises(ValueError, match="drift must hold at least one curve"):
        plot_step_for_step({})


def test_parallel_efficiency_draws_each_setting() -> None:
    rows = torch.logspace(0, 4, 5)
    curves = {"a": rows / (rows + 10), "b": rows / (rows + 1000)}
    fig = plot_parallel_efficiency(rows, curves)
    ax = fig.axes[0]
    drawn = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    assert list(drawn["b"]) == pytest.approx(curves["b"].tolist())
    assert ax.get_xscale() == "log" and fig.get_size_inches()[0] <= 7
    with pytest.raises(ValueError, match="'a' has shape \\(2,\\); expected \\(5,\\)"):
        plot_parallel_efficiency(rows, {"a": torch.ones(2)})
    with pytest.raises(ValueError, match="at least one curve"):
        plot_parallel_efficiency(rows, {})
