"""The figures of the part "The backward, by hand" (chapters 5-7) draw what they should."""

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from byhand.figures.backward import (
    _CE_EDGES,
    _CE_NODES,
    ours_vs_reference_gallery,
    plot_ce_gradient_bars,
    plot_ce_graph,
    plot_gradient_vs_true_logit,
    plot_smoothed_target,
    saved_bytes_bars,
)


def _bar_heights(ax, series_index, n_classes):
    patches = ax.patches[series_index * n_classes:(series_index + 1) * n_classes]
    return torch.tensor([p.get_height() for p in patches], dtype=torch.float64)


def _assert_labelled(ax):
    assert ax.get_title()
    assert ax.get_xlabel()
    assert ax.get_ylabel()


def test_gradient_bars_show_softmax_onehot_and_their_difference():
    logits = torch.tensor([1.5, -0.3, 0.8, 2.1, 0.0])
    fig = plot_ce_gradient_bars(logits, target=2)
    (ax,) = fig.axes
    assert ax.get_xlabel() and ax.get_ylabel()
    assert fig.get_size_inches()[0] <= 7.0
    assert len(ax.patches) == 3 * 5
    s = torch.softmax(logits.double(), dim=0)
    onehot = F.one_hot(torch.tensor(2), 5).double()
    torch.testing.assert_close(_bar_heights(ax, 0, 5), s)
    torch.testing.assert_close(_bar_heights(ax, 1, 5), onehot)
    torch.testing.assert_close(_bar_heights(ax, 2, 5), s - onehot)
    assert "(y)" in ax.get_xticklabels()[2].get_text()
    assert ax.get_legend() is None and len(fig.legends) == 1   # the legend sits outside the axes
    assert [t.get_text() for t in fig.legends[0].get_texts()][2].startswith("gradient")


def test_gradient_bars_sum_to_zero_for_any_target():
    logits = torch.randn(7)
    for target in range(7):
        fig = plot_ce_gradient_bars(logits, target=target)
        heights = _bar_heights(fig.axes[0], 2, 7)
        assert abs(float(heights.sum())) < 1e-12
        assert int(heights.argmin()) == target
        plt.close(fig)


@pytest.mark.parametrize(
    ("logits", "target", "match"),
    [
        (torch.zeros(1), 0, "C >= 2"),
        (torch.zeros(2, 3), 0, "shape"),
        (torch.zeros(4), 4, r"\[0, 3\]"),
        (torch.zeros(4), -1, "class index"),
    ],
)
def test_gradient_bars_reject_bad_input(logits, target, match):
    with pytest.raises(ValueError, match=match):
        plot_ce_gradient_bars(logits, target)


def test_sweep_draws_every_class_and_the_loss():
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0])
    values = torch.linspace(-3.0, 5.0, 33)
    fig = plot_gradient_vs_true_logit(logits, target=1, values=values)
    ax, loss_ax = fig.axes
    assert ax.get_xlabel() and ax.get_ylabel()
    assert loss_ax.get_ylabel()
    assert fig.get_size_inches()[0] <= 7.0
    assert len(ax.lines) == 4 + 1  # one curve per class and the zero line
    x = logits.double().repeat(33, 1)
    x[:, 1] = values.double()
    s = torch.softmax(x, dim=1)
    true_curve = torch.as_tensor(ax.lines[0].get_ydata())
    torch.testing.assert_close(true_curve, s[:, 1] - 1)
    total = sum(torch.as_tensor(line.get_ydata()) for line in ax.lines[:4])
    torch.testing.assert_close(total, torch.zeros(33, dtype=torch.float64))
    torch.testing.assert_close(torch.as_tensor(loss_ax.lines[0].get_ydata()), -s[:, 1].log())
    colours = {line.get_color() for line in ax.lines[:4]}
    assert len(colours) == 4  # the true class is never confused with another
    assert len(fig.legends) == 1


def test_sweep_rejects_a_single_point():
    with pytest.raises(ValueError, match="at least two points"):
        plot_gradient_vs_true_logit(torch.zeros(3), 0, torch.zeros(1))



def _graph_texts(fig):
    return {t.get_gid(): t for t in fig.axes[0].texts if t.get_gid()}


def test_ce_graph_draws_every_node_edge_and_gradient():
    fig = plot_ce_graph()
    try:
        texts = _graph_texts(fig)
        for name, (_col, _row, formula, grad) in _CE_NODES.items():
            assert texts[f"node-{name}"].get_text() == formula
            assert texts[f"grad-{name}"].get_text() == grad
        for parent, child, local in _CE_EDGES:
            assert texts[f"edge-{parent}-{child}"].get_text() == local
        arrows = [c for c in fig.axes[0].get_children()
                  if type(c).__name__ == "Annotation" and c.arrow_patch is not None]
        assert len(arrows) == len(_CE_EDGES)
        assert fig.get_size_inches()[0] <= 7.0   # a narrow, tall figure for a phone
        assert fig.get_size_inches()[1] > fig.get_size_inches()[0]
    finally:
        plt.close(fig)


def test_ce_graph_is_a_forward_chain_whose_labels_are_the_true_derivatives():
    # The edges form the forward: x first, L last, every node reached.
    parents = {child for _p, child, _l in _CE_EDGES}
    assert set(_CE_NODES) - parents == {"x"}
    assert {p for p, _c, _l in _CE_EDGES} == set(_CE_NODES) - {"L"}
    # Each drawn node gradient equals autograd's for a concrete batch.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([2, 0, 3])
    m = x.max(dim=1, keepdim=True).values
    u = x - m
    e = u.exp()
    z = e.sum(dim=1, keepdim=True)
    lam = z.log()
    ell = u - lam
    per_sample = -ell[torch.arange(3), y]
    nodes = {"m": m, "u": u, "e": e, "Z": z, "lam": lam, "ell": ell, "Ln": per_sample}
    for t in nodes.values():
        t.retain_grad()
    per_sample.mean().backward()
    s = torch.softmax(x.detach(), dim=1)
    onehot = F.one_hot(y, 4).double()
    expected = {
        "x": (s - onehot) / 3, "u": (s - onehot) / 3, "m": torch.zeros(3, 1, dtype=torch.float64),
        "e": (1 / (3 * z.detach())).expand(3, 4), "Z": 1 / (3 * z.detach()),
        "lam": torch.full((3, 1), 1 / 3, dtype=torch.float64), "ell": -onehot / 3,
        "Ln": torch.full((3,), 1 / 3, dtype=torch.float64),
    }
    torch.testing.assert_close(x.grad, expected["x"])
    for name, node in nodes.items():
        torch.testing.assert_close(node.grad, expected[name], atol=1e-15, rtol=1e-12)


def test_ce_graph_labels_do_not_overlap():
    fig = plot_ce_graph()
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        texts = [t for t in fig.axes[0].texts if t.get_text()]
        boxes = [t.get_window_extent(renderer) for t in texts]
        width, height = fig.canvas.get_width_height()
        for t, box in zip(texts, boxes, strict=True):
            assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, t.get_text()
        for i, (a, box_a) in enumerate(zip(texts, boxes, strict=True)):
            for b, box_b in zip(texts[i + 1:], boxes[i + 1:], strict=True):
                assert not box_a.overlaps(box_b), (a.get_text(), b.get_text())
    finally:
        plt.close(fig)

def test_smoothed_target_bars_without_and_with_weights():
    fig = plot_smoothed_target(target=1, n_classes=4, label_smoothing=0.2)
    (ax,) = fig.axes
    _assert_labelled(ax)
    assert len(ax.patches) == 2 * 4
    smoothed = _bar_heights(ax, 1, 4)
    torch.testing.assert_close(smoothed, torch.tensor([0.05, 0.85, 0.05, 0.05], dtype=torch.float64))
    plt.close(fig)

    w = torch.tensor([0.5, 2.0, 1.0, 4.0])
    fig = plot_smoothed_target(target=1, n_classes=4, label_smoothing=0.2, weight=w)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * 4
    q = _bar_heights(ax, 2, 4)
    expected = 0.8 * 2.0 * F.one_hot(torch.tensor(1), 4).double() + 0.05 * w.double()
    torch.testing.assert_close(q, expected)
    # the legend sits below the axes, off the bars
    assert ax.get_legend() is None and len(fig.legends) == 1
    assert fig.get_size_inches()[0] <= 7.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": 4, "n_classes": 4, "label_smoothing": 0.1}, "target"),
        ({"target": 0, "n_classes": 1, "label_smoothing": 0.1}, "n_classes"),
        ({"target": 0, "n_classes": 3, "label_smoothing": 1.5}, r"\[0, 1\]"),
        ({"target": 0, "n_classes": 3, "label_smoothing": 0.1, "weight": torch.ones(4)}, "shape"),
    ],
)
def test_smoothed_target_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_smoothed_target(**kwargs)


def test_saved_bytes_bars_labels_and_annotations() -> None:
    unit = 8192 * 1000 * 4
    fig = saved_bytes_bars(["input", "softmax", "plain ops"], [unit, unit, 3 * unit], unit)
    try:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert ax.get_xlabel() and ax.get_title()
        # the first label is drawn at the top
        assert [t.get_text() for t in ax.get_yticklabels()] == ["input", "softmax", "plain ops"]
        assert list(ax.get_yticks()) == [2, 1, 0]
        texts = [t.get_text() for t in ax.texts]
        assert any("93.8 MiB" in t and "3.00×" in t for t in texts)
        assert len(ax.patches) == 3
        # the N×C line is labelled in place, not by a legend over the bars
        assert ax.get_legend() is None and "one N×C tensor" in texts
        assert fig.get_size_inches()[0] <= 7.0
    finally:
        plt.close(fig)


def test_saved_bytes_bars_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        saved_bytes_bars(["a"], [1.0, 2.0])


def test_gallery_one_panel_per_case_and_nan_note() -> None:
    ref = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4)
    panels = {
        "correct": (ref, ref),
        "doubled": (2 * ref, ref),
        "nan": (torch.full_like(ref, float("nan")), ref),
    }
    fig = ours_vs_reference_gallery(panels, ncols=2)
    try:
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in visible] == ["correct", "doubled", "nan"]
        # axis names on the outer panels: the left column and the lowest panel of each column
        assert [bool(ax.get_ylabel()) for ax in visible] == [True, False, True]
        assert [bool(ax.get_xlabel()) for ax in visible] == [False, True, True]
        assert any("12 of 12" in t.get_text() for t in visible[2].texts)
        assert len(fig.axes) == 4 and not fig.axes[3].get_visible()
        assert fig.get_size_inches()[0] <= 7.0
    finally:
        plt.close(fig)


def test_gallery_rejects_bad_panels() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        ours_vs_reference_gallery({})
    with pytest.raises(ValueError, match="3 entries in ours and 4"):
        ours_vs_reference_gallery({"bad": (torch.zeros(3), torch.zeros(4))})


def test_ce_graph_arrows_cross_no_label():
    fig = plot_ce_graph()
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        labels = [t for t in fig.axes[0].texts if t.get_gid() and not t.get_gid().startswith("node-")]
        boxes = [t.get_window_extent(renderer) for t in labels]
        arrows = [c for c in fig.axes[0].get_children()
                  if type(c).__name__ == "Annotation" and c.arrow_patch is not None]
        for arrow in arrows:
            for polygon in arrow.arrow_patch.get_path().to_polygons(closed_only=False):
                points = torch.as_tensor(polygon, dtype=torch.float64)
                steps = torch.linspace(0.0, 1.0, 20, dtype=torch.float64).unsqueeze(1)
                for a, b in itertools.pairwise(points):
                    for x, y in (a + steps * (b - a)).tolist():
                        for label, box in zip(labels, boxes, strict=True):
                            assert not box.contains(x, y), (label.get_text(), x, y)
    finally:
        plt.close(fig)


def _smallest_font_and_width(fig: Figure) -> tuple[float, float]:
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text)
             if t.get_visible() and t.get_text()]
    return min(sizes), fig.get_size_inches()[0]


def test_chapter_6_and_7_figures_are_legible_at_phone_width() -> None:
    """At most 5.6 in wide, so a 360 px phone shows them at two thirds of their size or
    more, and no text under 12 pt: no label below about 10 px on the phone."""
    unit = 8192 * 1000 * 4
    ref = torch.linspace(-1, 1, 12, dtype=torch.float64)
    figures = [
        plot_smoothed_target(target=1, n_classes=4, label_smoothing=0.2,
                             weight=torch.tensor([0.5, 2.0, 1.0, 4.0])),
        saved_bytes_bars(["F.cross_entropy", "plain tensor ops"], [unit, 3 * unit], unit),
        ours_vs_reference_gallery({f"bug {k}": (k * ref, ref) for k in range(8)}),
    ]
    for fig in figures:
        try:
            smallest, width = _smallest_font_and_width(fig)
            assert width <= 5.6 and smallest >= 12, (width, smallest)
        finally:
            plt.close(fig)
