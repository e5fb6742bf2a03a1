"""Book-only helpers: the figures the chapters draw, and ``glue`` for their prose.

One module per part of the book, each holding one function per figure that returns its
``Figure``. No library module of :mod:`byhand` imports from here. Importing this package
applies the book's figure style (:func:`byhand.figures.style.use_book_style`).
"""

from .glue import glue
from .style import use_book_style

use_book_style()

__all__ = ["glue", "use_book_style"]
