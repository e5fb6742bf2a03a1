"""The figures of the part "At scale" (chapter 10) draw the numbers they are given."""

import matplotlib

matplotlib.use("Agg")

import pytest

from byhand.figures.at_scale import MIB, plot_allocation_timelines, plot_scaling

SWEEP = {"x": [256, 512, 1024], "xlabel": "N",
         "peak_bytes": {"naive": [3 * MIB, 6 * MIB, 12 * MIB], "byhand": [MIB, MIB, 2 * MIB]},
         "seconds": {"naive": [0.1, 0.2, 0.4], "byhand": [0.12, 0.2, 0.5]}}


def test_scaling_draws_every_value_on_log_axes_with_one_legend() -> None:
    fig = plot_scaling([SWEEP, {**SWEEP, "xlabel": "V", "name": "the vocabulary"}],
                       legend_names={"byhand": "ours"})
    assert len(fig.axes) == 4
    memory, time = fig.axes[0], fig.axes[1]
    assert memory.get_yscale() == "log" and memory.get_xscale() == "log"
    assert list(memory.lines[0].get_ydata()) == [3, 6, 12]  # MiB
    assert list(time.lines[1].get_ydata()) == [0.12, 0.2, 0.5]
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert ax.get_legend() is None  # the legend sits above the panels, off the data
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["naive", "ours"]
    assert fig.get_figwidth() <= 7.0
    assert memory.get_title() == "Memory as N grows"
    assert fig.axes[3].get_title() == "Time as the vocabulary grows"


def test_scaling_rejects_mismatched_lengths_and_no_sweeps() -> None:
    with pytest.raises(ValueError, match="seconds\\['naive'\\] must hold 3"):
        plot_scaling([{**SWEEP, "seconds": {"naive": [1.0]}}])
    with pytest.raises(ValueError, match="sweeps"):
        plot_scaling([])


def test_allocation_timelines_scale_time_to_the_call_and_mark_the_reference() -> None:
    fig = plot_allocation_timelines({"naive": ([0.0, 1.0, 2.0], [0, 2 * MIB, 0]),
                                     "byhand": ([0.0, 0.5], [0, MIB])},
                                    reference_bytes=MIB, reference_label="logits")
    ax = fig.axes[0]
    assert list(ax.lines[0].get_xdata()) == [0.0, 0.5, 1.0]
    assert list(ax.lines[0].get_ydata()) == [0, 2, 0]
    assert ax.lines[2].get_ydata()[0] == 1  # the reference line, in MiB
    assert ax.texts[0].get_text() == "logits"
    with pytest.raises(ValueError, match="timelines"):
        plot_allocation_timelines({})
