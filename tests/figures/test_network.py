"""The figures of the part "A network trained by hand" (chapters 8-9) draw what they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.figure import Figure

from byhand.figures.network import (
    plot_confusion,
    plot_digits,
    plot_history,
    plot_loss_curves,
    plot_relu_subgradients,
    plot_saturation,
    plot_step_differences,
    plot_time_to_accuracy,
    plot_true_class_recovery,
    plot_twin_training,
)
from byhand.train import History


def _labelled(fig: Figure) -> None:
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_relu_subgradients_marks_each_choice_at_zero():
    fig = plot_relu_subgradients({"F.relu": 0.0, "clamp": 1.0, "maximum": 0.5})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    _labelled(fig)
    left, right = fig.axes
    x, y = left.lines[0].get_data()
    assert min(x) == -2.0 and max(x) == 2.0 and min(y) == 0.0 and max(y) == 2.0
    markers = [line for line in right.lines if line.get_linestyle() == "None"]
    assert [float(m.get_ydata()[0]) for m in markers] == [0.0, 1.0, 0.5]
    assert all(float(m.get_xdata()[0]) == 0.0 for m in markers)
    # the legend sits below the panels, off the markers it describes
    assert right.get_legend() is None and len(fig.legends) == 1
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "clamp: 1 at 0" in legend and "maximum: 0.5 at 0" in legend
    assert fig.get_size_inches()[0] <= 7.0


def test_relu_subgradients_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        plot_relu_subgradients({})
    with pytest.raises(ValueError, match="limit must be positive"):
        plot_relu_subgradients({"relu": 0.0}, limit=0.0)


def test_saturation_one_log_panel_per_entry():
    u = torch.linspace(-10, 10, 21)
    panels = {
        "softmax": {"MSE": torch.sigmoid(u) * 1e-3 + 1e-9, "CE": 1 - torch.sigmoid(u) + 1e-6},
        "sigmoid": {"MSE": torch.sigmoid(u) ** 2, "BCE": torch.sigmoid(-u)},
    }
    fig = plot_saturation(u, panels, shade_below={"softmax": -3.0}, shade_label="p < 1%")
    assert len(fig.axes) == 2
    _labelled(fig)
    for ax, (title, curves) in zip(fig.axes, panels.items(), strict=True):
        assert ax.get_title() == title
        assert ax.get_yscale() == "log"
        assert len(ax.lines) == len(curves)
        torch.testing.assert_close(
            torch.tensor(ax.lines[0].get_ydata()), next(iter(curves.values())).double()
        )
    shaded = [len(ax.patches) for ax in fig.axes]
    assert shaded == [1, 0]
    assert "p < 1%" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    # panels are stacked for a narrow column, each legend below its axes (off the data)
    assert fig.get_size_inches()[0] <= 7.0
    assert fig.axes[0].get_position().y0 > fig.axes[1].get_position().y1
    for ax in fig.axes:
        assert ax.get_legend().get_bbox_to_anchor().y1 < ax.get_window_extent().y0 + 1


def test_saturation_rejects_bad_arguments():
    u = torch.linspace(-1, 1, 5)
    with pytest.raises(ValueError, match="at least one panel"):
        plot_saturation(u, {})
    with pytest.raises(ValueError, match="at least one panel"):
        plot_saturation(u, {"empty": {}})
    with pytest.raises(ValueError, match=r"curve 'bad' must have the logit's shape \(5,\)"):
        plot_saturation(u, {"p": {"bad": torch.ones(4)}})
    with pytest.raises(ValueError, match=r"panels that do not exist: \['q'\]"):
        plot_saturation(u, {"p": {"ok": torch.ones(5)}}, shade_below={"q": 0.0})


def test_true_class_recovery_one_curve_per_loss():
    curves = {"CE": torch.linspace(1e-4, 0.9, 30), "MSE": torch.full((30,), 1e-4)}
    fig = plot_true_class_recovery(curves)
    assert len(fig.axes) == 1
    _labelled(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.lines] == ["CE", "MSE"]
    assert len(ax.lines[0].get_xdata()) == 30
    assert ax.get_legend() is None and len(fig.legends) == 1
    with pytest.raises(ValueError, match="at least one curve"):
        plot_true_class_recovery({})


def test_twin_training_losses_and_log_differences_with_zeros():
    losses = {"byhand": [2.3, 2.0, 1.5], "torch.nn": [2.3, 2.0, 1.5]}
    fig = plot_twin_training(losses, [0.0, 1e-8, 3e-8])
    assert len(fig.axes) == 2
    _labelled(fig)
    left, right = fig.axes
    assert len(left.lines) == 2 and left.get_legend() is not None
    assert right.get_yscale() == "log"
    y = right.lines[0].get_ydata()
    assert y[0] > 0 and y[0] < 1e-8 and y[2] == pytest.approx(3e-8)
    bottom, top = right.get_ylim()
    assert bottom <= 1e-9 and top >= 3e-7
    fig = plot_twin_training(losses, [1e-8, 1e-8, 2e-8], reference={"float32 spacing": 1e-6})
    right = fig.axes[1]
    assert len(right.lines) == 2 and right.lines[1].get_ydata()[0] == 1e-6
    assert right.get_ylim()[1] == pytest.approx(1e-5)
    assert "float32 spacing" in [t.get_text() for t in right.get_legend().get_texts()]
    assert fig.get_size_inches()[0] <= 7.0
    # All zeros still draw.
    plot_twin_training({"a": [1.0]}, [0.0])
    with pytest.raises(ValueError, match="at least one curve"):
        plot_twin_training({}, [])


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


def test_plot_digits_stays_phone_narrow():
    fig = plot_digits(torch.rand(20, 784), ncols=10)
    columns = {ax.get_subplotspec().colspan.start for ax in fig.axes}
    assert len(columns) == 6 and fig.get_figwidth() <= 7.0


def test_plot_history_draws_loss_and_accuracy():
    history = History(train_loss=[0.5, 0.3], valid_loss=[0.4, 0.35],
                      valid_accuracy=[0.95, 0.97], seconds=[1.0, 1.0],
                      step_loss=[0.9, 0.6, 0.4, 0.3])
    fig = plot_history(history, target=0.98, reference_error=0.016, title="run")
    assert fig.get_figwidth() <= 7.0
    ax_loss, ax_acc = fig.axes
    assert ax_acc.get_subplotspec().rowspan.start == 1  # stacked: one column
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
    assert labels[1].startswith("broken:\ninf from step 2 (2 steps)")
    ticks = [line for line in ax.lines if line.get_marker() == "|"]
    assert len(ticks) == 1 and list(ticks[0].get_xdata()) == [2, 3]


def test_plot_time_to_accuracy_draws_every_run_against_seconds():
    gd = History(train_loss=[2.0, 1.0, 0.8], valid_loss=[1.0, 0.9, 0.8],
                 valid_accuracy=[0.5, 0.8, 0.9], seconds=[1.0, 1.0, 2.0])
    sgd = History(train_loss=[0.4], valid_loss=[0.3], valid_accuracy=[0.95], seconds=[3.0])
    runs = {"full batch, by hand": gd, "full batch, autograd": gd, "minibatch, by hand": sgd}
    fig = plot_time_to_accuracy(runs, target=0.85)
    ax_loss, ax_acc = fig.axes
    _labelled(fig)
    assert fig.get_figwidth() <= 7.0
    assert list(ax_acc.lines[0].get_xdata()) == [1.0, 2.0, 4.0]
    assert list(ax_acc.lines[0].get_ydata()) == pytest.approx([50.0, 80.0, 90.0])
    assert ax_acc.lines[-1].get_ydata()[0] == pytest.approx(85.0)
    assert ax_loss.lines[0].get_color() == ax_loss.lines[1].get_color()
    assert ax_loss.lines[1].get_linestyle() == "--"
    labels = [text.get_text() for text in ax_acc.get_legend().get_texts()]
    assert labels == list(runs)


def test_chapter_8_figures_are_legible_at_phone_width() -> None:
    """At most 5.6 in wide, so a 360 px phone shows them at two thirds of their size or
    more, and no text under 12 pt: no label below about 10 px on the phone."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    u = torch.linspace(-5, 5, 11, dtype=torch.float64)
    figures = [
        plot_relu_subgradients({"F.relu(x)": 0.0, "x.clamp(min=0)": 1.0}),
        plot_saturation(u, {"softmax": {"a": u.exp(), "b": (-u).exp()}}),
        plot_true_class_recovery({"cross-entropy": u.exp(), "MSE": u.exp()}),
        plot_twin_training({"a": [2.0, 1.0], "b": [2.0, 1.0]}, [1e-8, 2e-8], {"spacing": 6e-8}),
    ]
    for fig in figures:
        try:
            fig.canvas.draw()
            sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
            assert fig.get_size_inches()[0] <= 5.6 and min(sizes) >= 12
        finally:
            plt.close(fig)
