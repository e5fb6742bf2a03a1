"""Hand a computed value to the book's prose, in the book build and outside it.

The book is built with myst-nb, whose ``glue`` stores a value under a name so the
text can quote it (``{glue:text}`name:.3f```); no number in the prose is typed by
hand. In Colab or a plain Jupyter kernel myst-nb may be missing: then the value is
simply shown, so every chapter runs anywhere.
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue"]


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Store ``value`` under ``name`` for the prose and return it.

    With ``display=True`` the value is also shown in the cell's output.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return value
    myst_glue(name, value, display=display)
    return value
