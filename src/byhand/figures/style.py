"""The look of every figure in the book: sized for the text column, legible on a phone.

The book's text column is about 7 inches wide on a laptop and 342 CSS pixels on a 390 px
phone, where a figure 5.6 in wide is shown at about 85% of its size and one 6.4 in wide
at 74%. Figures are rendered as SVG (vector, sharp at any zoom) inside a notebook.
:func:`phone_text_sizes` measures each text of a figure in CSS pixels at the phone's
column width, and :func:`phone_legible` raises what is too small there: tick labels to
at least :data:`PHONE_MIN_PX`, every other text (titles, axis labels, legends,
annotations) to :data:`PHONE_LABEL_MIN_PX`, and a sub- or superscript to
:data:`PHONE_MIN_PX` too.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = ["BOOK_STYLE", "PHONE_COLUMN_PX", "PHONE_LABEL_MIN_PX", "PHONE_MIN_POINTS",
           "PHONE_MIN_PX", "PhoneText", "phone_legible", "phone_text_sizes", "use_book_style"]

BOOK_STYLE: dict[str, object] = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "font.size": 12,
    "axes.titlesize": 12.5,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 10.5,
    "legend.framealpha": 0.9,
    "lines.linewidth": 1.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE`, and make a running IPython kernel emit SVG figures."""
    mpl.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None:
        return
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("svg")


#: The smallest type, in points, of the book's figures before :func:`phone_legible`
#: scales it to the figure's width.
PHONE_MIN_POINTS = 12.0

#: The width of the text column of a 390 px phone, in CSS pixels: what a figure shrinks to.
PHONE_COLUMN_PX = 342.0
#: The smallest text of a figure on that phone, in CSS pixels (tick labels, subscripts).
PHONE_MIN_PX = 9.0
#: The smallest title, axis label, legend entry or annotation on that phone, in CSS pixels.
PHONE_LABEL_MIN_PX = 11.0
#: How much smaller matplotlib's mathtext sets a sub- or superscript than its base.
_SCRIPT_SHRINK = 0.7


@dataclass(frozen=True)
class PhoneText:
    """One text of a figure as a phone shows it: ``px`` is the size in CSS pixels of its
    smallest glyph (a subscript's, if it has one), ``label`` whether it is a title, axis
    label, legend entry or annotation rather than a tick label."""

    text: str
    px: float
    label: bool

    @property
    def minimum(self) -> float:
        return PHONE_LABEL_MIN_PX if self.label and not self.scripted else PHONE_MIN_PX

    @property
    def scripted(self) -> bool:
        return _has_scripts(self.text)

    @property
    def legible(self) -> bool:
        return self.px >= self.minimum - 0.01


def _has_scripts(text: str) -> bool:
    return text.count("$") >= 2 and ("_" in text or "^" in text)


def _tick_labels(fig: Figure) -> set[int]:
    ticks: set[int] = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in (*axis.get_major_ticks(), *axis.get_minor_ticks()):
                ticks.update({id(tick.label1), id(tick.label2)})
            ticks.add(id(axis.offsetText))
    return ticks


def _draw(fig: Figure) -> None:
    """Lay ``fig`` out to measure it, quietly: the notebook's own drawing reports problems."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.canvas.draw()


def _shown_texts(fig: Figure) -> list[Text]:
    """The texts a reader sees: visible, not empty, drawn inside the saved figure."""
    _draw(fig)
    renderer = fig.canvas.get_renderer()
    bbox = fig.get_tightbbox(renderer)
    shown = []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        extent = text.get_window_extent(renderer)
        if extent.width <= 0 or not bbox.transformed(fig.dpi_scale_trans).overlaps(extent):
            continue
        shown.append(text)
    return shown


def _shown_width_pt(fig: Figure) -> float:
    """The width, in points, of the figure as the notebook saves it (``bbox_inches="tight"``)."""
    _draw(fig)
    bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    pad = float(mpl.rcParams["savefig.pad_inches"])
    return (bbox.width + 2 * pad) * 72.0


def phone_text_sizes(fig: Figure, column_px: float = PHONE_COLUMN_PX) -> list[PhoneText]:
    """Every shown text of ``fig`` with its size in CSS pixels on a phone.

    The figure is shown ``column_px`` wide, or at its natural size (1 pt = 4/3 px) if that
    is narrower; a text with a sub- or superscript counts at its script's size.
    """
    width_pt = _shown_width_pt(fig)
    scale = min(column_px, width_pt * 4.0 / 3.0) / width_pt  # CSS px per point
    ticks = _tick_labels(fig)
    sizes = []
    for text in _shown_texts(fig):
        px = text.get_fontsize() * scale
        if _has_scripts(text.get_text()):
            px *= _SCRIPT_SHRINK
        sizes.append(PhoneText(text.get_text(), px, id(text) not in ticks))
    return sizes


def _phone_scale(fig: Figure) -> float:
    """CSS pixels per point of ``fig`` on a phone, from the figure's own width.

    :func:`phone_legible` sizes text by the figure's width, not by the saved one: text that
    sticks out widens the saved figure, and enlarging it for that would widen it again.
    """
    # The saved figure is padded by savefig.pad_inches on each side; allow a little more
    # for text that reaches the edge.
    width_pt = (fig.get_figwidth() + 2 * float(mpl.rcParams["savefig.pad_inches"]) + 0.15) * 72.0
    return min(PHONE_COLUMN_PX, width_pt * 4.0 / 3.0) / width_pt


def phone_legible(fig: Figure, minimum: float = PHONE_MIN_POINTS) -> Figure:
    """Raise every text of ``fig`` that would be too small on a phone; return ``fig``.

    Every text is at least ``minimum`` points; then, at the width the figure is shown on a
    phone, tick labels reach :data:`PHONE_MIN_PX`, other texts :data:`PHONE_LABEL_MIN_PX`,
    and a sub- or superscript (a log axis's exponent too) :data:`PHONE_MIN_PX`. Tick
    labels, which matplotlib redraws from the axes' settings, are set through
    ``tick_params``. Keep legends to one column and figures at most 5.6 in wide: larger
    type must not widen the figure, or it shrinks again on the phone.
    """
    for text in fig.findobj(Text):
        if text.get_fontsize() < minimum:
            text.set_fontsize(minimum)
    scale = _phone_scale(fig)
    for _ in range(3):  # tick labels appear or change as the type grows: look again
        ticks = _tick_labels(fig)
        changed = False
        for ax in fig.axes:
            for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
                labels = [t for t in axis.get_ticklabels(which="both") if t.get_text()]
                if not labels:
                    continue
                scripted = any(_has_scripts(t.get_text()) for t in labels)
                need = max(minimum, PHONE_MIN_PX / (_SCRIPT_SHRINK if scripted else 1.0) / scale)
                if max(t.get_fontsize() for t in labels) < need - 1e-6:
                    ax.tick_params(axis=name, which="both", labelsize=math.ceil(need * 10 + 0.5) / 10)
                    changed = True
        for text in _shown_texts(fig):
            if id(text) in ticks:
                continue
            need = PHONE_LABEL_MIN_PX
            if _has_scripts(text.get_text()):
                need = max(need, PHONE_MIN_PX / _SCRIPT_SHRINK)
            points = need / scale
            if text.get_fontsize() < points - 1e-6:
                text.set_fontsize(math.ceil(points * 10 + 0.5) / 10)
                changed = True
        if not changed:
            break
        # If the text now sticks out of the figure, the phone shrinks it more: size for
        # the saved width next time round (a bounded number of times, so it cannot run away).
        saved_pt = _shown_width_pt(fig)
        scale = min(scale, min(PHONE_COLUMN_PX, saved_pt * 4.0 / 3.0) / saved_pt)
    return fig
