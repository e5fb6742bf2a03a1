"""The figures of chapter 08 (Linear and ReLU by hand) draw what they are given."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.figure import Figure

from byhand.plots import (
    plot_relu_subgradients,
    plot_saturation,
    plot_true_class_recovery,
    plot_twin_training,
)


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
    legend = [t.get_text() for t in right.get_legend().get_texts()]
    assert "clamp: 1 at 0" in legend and "maximum: 0.5 at 0" in legend


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
    # All zeros still draw.
    plot_twin_training({"a": [1.0]}, [0.0])
    with pytest.raises(ValueError, match="at least one curve"):
        plot_twin_training({}, [])
