"""The look of every figure in the book: sized for the text column, legible on a phone.

The book's text column is about 7 inches wide on a laptop and 360 CSS pixels on a phone,
where a figure is shown at roughly half its size. So figures are at most 7 in wide, with
12-point labels, and are rendered as SVG (vector, sharp at any zoom) inside a notebook.
"""

from __future__ import annotations

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = ["BOOK_STYLE", "PHONE_MIN_POINTS", "phone_legible", "use_book_style"]

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


#: The smallest type, in points, of the book's figures. They are at most 5.6 in
#: wide, so a 360 px phone shows them at about two thirds of their size: 12 pt becomes
#: about 10 px there.
PHONE_MIN_POINTS = 12.0


def phone_legible(fig: Figure, minimum: float = PHONE_MIN_POINTS) -> Figure:
    """Raise every text of ``fig`` smaller than ``minimum`` points to it; return ``fig``.

    Tick labels, which matplotlib redraws from the axes' settings, are set to ``minimum``.
    """
    for text in fig.findobj(Text):
        if text.get_fontsize() < minimum:
            text.set_fontsize(minimum)
    for ax in fig.axes:
        ax.tick_params(labelsize=minimum)
    return fig
