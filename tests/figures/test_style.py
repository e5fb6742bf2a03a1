"""The measure of a figure's text on a phone, and the function that makes it legible there."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from byhand.figures.style import (
    PHONE_LABEL_MIN_PX,
    PHONE_MIN_PX,
    phone_legible,
    phone_text_sizes,
)


def test_sizes_are_css_pixels_at_the_phone_column_width():
    fig, ax = plt.subplots(figsize=(5.6, 3.0), layout="constrained")
    ax.plot([0, 1], [0, 1])
    ax.set_title("title", fontsize=12)
    ax.tick_params(labelsize=12)
    try:
        sizes = phone_text_sizes(fig)
        fig.canvas.draw()
        width_pt = (fig.get_tightbbox(fig.canvas.get_renderer()).width + 0.2) * 72
        title = next(t for t in sizes if t.text == "title")
        # 12 pt on a figure width_pt wide shown 342 px wide
        assert title.px == pytest.approx(12 * 342 / width_pt)
        assert title.label and not [t for t in sizes if t.text != "title" and t.label]
    finally:
        plt.close(fig)


def test_a_narrow_figure_is_shown_at_its_natural_size():
    fig, ax = plt.subplots(figsize=(2.0, 2.0))
    ax.set_title("t", fontsize=12)
    try:
        title = next(t for t in phone_text_sizes(fig) if t.text == "t")
        assert title.px == pytest.approx(16.0)  # 12 pt = 16 CSS px, not enlarged
    finally:
        plt.close(fig)


def test_a_subscript_counts_at_its_own_size():
    fig, ax = plt.subplots(figsize=(5.6, 3.0))
    ax.set_xlabel("plain", fontsize=14)
    ax.set_ylabel("$s_i$", fontsize=14)
    try:
        sizes = {t.text: t.px for t in phone_text_sizes(fig)}
        assert sizes["$s_i$"] == pytest.approx(0.7 * sizes["plain"])
    finally:
        plt.close(fig)


def test_phone_legible_raises_small_text_to_the_phone_minimums():
    fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
    ax.semilogy([1, 2, 3], [1, 10, 1000], label="curve $L_n$")
    ax.set_xlabel("step", fontsize=6)
    ax.text(1.5, 10, "note", fontsize=5)
    ax.legend(fontsize=6)
    try:
        assert [t for t in phone_text_sizes(fig) if not t.legible]
        phone_legible(fig)
        sizes = phone_text_sizes(fig)
        assert all(t.legible for t in sizes), [t for t in sizes if not t.legible]
        assert min(t.px for t in sizes if t.label) >= PHONE_MIN_PX
        assert {t.text: t.px for t in sizes}["note"] >= PHONE_LABEL_MIN_PX
    finally:
        plt.close(fig)
