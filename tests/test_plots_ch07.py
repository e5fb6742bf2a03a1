"""The figures of chapter 07: saved-bytes bars and the ours-vs-reference gallery."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from byhand.plots import ours_vs_reference_gallery, saved_bytes_bars


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
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in visible)
        assert any("12 of 12" in t.get_text() for t in visible[2].texts)
        assert len(fig.axes) == 4 and not fig.axes[3].get_visible()
    finally:
        plt.close(fig)


def test_gallery_rejects_bad_panels() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        ours_vs_reference_gallery({})
    with pytest.raises(ValueError, match="3 entries in ours and 4"):
        ours_vs_reference_gallery({"bad": (torch.zeros(3), torch.zeros(4))})
