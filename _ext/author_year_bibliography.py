"""Sphinx extension: a bibliography whose labels are the author-year citations.

The chapters cite in author-year form ("Meurer et al., 2017"); pybtex's styles label the
list with initials or numbers ("[MSP+17]"), so the two never matched. This registers a
pybtex label style that writes the same author-year text the citations show, and a
formatting style ``author_year`` (pybtex's ``plain``, sorted by author, year and title,
with those labels), selected in ``_config.yml`` by ``bibtex_default_style``. An entry
without an author or editor (a documentation page, a forum thread) is labelled by its
title, as the citation is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx


def _plain(latex: str) -> str:
    return Text.from_latex(latex).render_as("text")


def author_year(entry: Any) -> str:
    """``Last, year``, ``Last and Other, year``, ``Last et al., year`` or ``Title, year``."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_plain(" ".join(p.prelast_names + p.last_names)) for p in persons]
    if not names:
        who = _plain(entry.fields.get("title", entry.key))
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    """Labels equal to the author-year citations; a repeated one gets a, b, ... after the year."""

    def format_labels(self, sorted_entries: Iterable[Any]) -> Iterator[str]:
        entries = list(sorted_entries)
        labels = [author_year(e) for e in entries]
        repeated = {label for label, count in Counter(labels).items() if count > 1}
        seen: Counter[str] = Counter()
        for label in labels:
            if label in repeated:
                seen[label] += 1
                yield f"{label}{chr(ord('a') + seen[label] - 1)}"
            else:
                yield label


class AuthorYearStyle(PlainStyle):
    default_label_style = "author_year"


register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)


def setup(app: Sphinx) -> dict[str, Any]:
    return {"parallel_read_safe": True, "parallel_write_safe": True}
