"""Sphinx extension: an author-year bibliography whose labels are the in-text citations.

pybtex's styles label the list with initials or numbers ("[MSP+17]") and sort entries
without an author first; sphinxcontrib-bibtex's author-year citations fall back on an
entry's title. This registers, for pybtex and sphinxcontrib-bibtex:

- a label style ``author_year``: ``Last, year``, ``Last and Other, year``,
  ``Last et al., year``; an entry without author or editor (a documentation page, a forum
  thread) is labelled by its ``shortauthor`` field, the body that published it
  ("PyTorch docs, 2026", "PyTorch Forums, 2020"), never by its title. Repeated labels get
  a, b, ... after the year;
- a sorting style ``author_year`` that orders the list by that same name, then year and
  title, so "IEEE" sits among the I's and "PyTorch docs" among the P's;
- a formatting style ``author_year``: pybtex's ``plain`` with those labels and that order;
- a citation style ``author_year_label``: ``(Meurer et al., 2017)`` in the text, with the
  very label the list shows (the suffix letter included), so the two always match.

It also gives the list roles that assistive technology understands: docutils marks the
list ``doc-bibliography`` and each entry ``doc-biblioentry`` (deprecated in DPUB-ARIA
1.1); the page says ``list`` and ``listitem`` instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle
from sphinx.application import Sphinx
from sphinxcontrib.bibtex.plugin import register_plugin as register_bibtex_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle, GroupReferenceStyle
from sphinxcontrib.bibtex.style.referencing.basic_label import (
    BasicLabelParentheticalReferenceStyle,
)
from sphinxcontrib.bibtex.style.referencing.extra_empty import ExtraEmptyReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_label import ExtraLabelReferenceStyle
from sphinxcontrib.bibtex.style.template import entry_label, join, reference


def _plain(latex: str) -> str:
    return Text.from_latex(latex).render_as("text")


def who(entry: Any) -> str:
    """The name an entry is cited by: its authors (or editors), else its ``shortauthor``."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_plain(" ".join(p.prelast_names + p.last_names)) for p in persons]
    if not names:
        name = entry.fields.get("shortauthor")
        if not name:
            raise ValueError(f"{entry.key}: an entry without author or editor needs a "
                             "shortauthor field (who published it, e.g. 'PyTorch docs')")
        return _plain(name)
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


def author_year(entry: Any) -> str:
    """``Last, year``, ``Last and Other, year``, ``Last et al., year`` or ``Publisher, year``."""
    return f"{who(entry)}, {entry.fields.get('year', 'n.d.')}"


def _sortable(text: str) -> str:
    """Lower case without accents or braces, so that "{IEEE}" sorts as "ieee"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return re.sub(r"[^a-z0-9 ]", "", "".join(c for c in decomposed if not unicodedata.combining(c)).lower())


class AuthorYearSorting(BaseSortingStyle):
    """By the cited name, then year, then title: the order a reader looks a label up in."""

    def sorting_key(self, entry: Any) -> tuple[str, str, str]:
        return (_sortable(who(entry)), entry.fields.get("year", ""),
                _sortable(_plain(entry.fields.get("title", ""))))


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
    default_sorting_style = "author_year"


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")")


@dataclass
class AuthorYearLabelReferenceStyle(GroupReferenceStyle):
    """``(Meurer et al., 2017; Glorot and Bengio, 2010)``: the bibliography's own labels.

    ``{cite:p}`` (and ``{cite}``) gives the bracketed labels, ``{cite:t}`` the label
    without brackets, to be read as part of the sentence.
    """

    bracket_parenthetical: BracketStyle = field(default_factory=_round)
    bracket_label: BracketStyle = field(default_factory=_round)

    def __post_init__(self) -> None:
        self.styles.extend([
            BasicLabelParentheticalReferenceStyle(bracket=self.bracket_parenthetical),
            _TextualLabelReferenceStyle(),
            ExtraLabelReferenceStyle(bracket=self.bracket_label),
            ExtraEmptyReferenceStyle(),
        ])
        super().__post_init__()


@dataclass
class _TextualLabelReferenceStyle(BasicLabelParentheticalReferenceStyle):
    """``{cite:t}``: the label as words of the sentence, linked to its entry."""

    bracket: BracketStyle = field(default_factory=_round)

    def role_names(self) -> Iterable[str]:
        return ["t", "ct", "ts", "cts"]

    def outer(self, role_name: str, children: list[Any]) -> Any:
        return self.bracket.outer(children, brackets=False, capfirst="c" in role_name)

    def inner(self, role_name: str) -> Any:
        return join[reference[entry_label]]


register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels)
register_plugin("pybtex.style.sorting", "author_year", AuthorYearSorting)
register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
register_bibtex_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_label",
                       AuthorYearLabelReferenceStyle)


def _list_roles(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                doctree: object) -> None:
    body = context.get("body")
    if isinstance(body, str) and "doc-biblio" in body:
        context["body"] = (body.replace('role="doc-bibliography"', 'role="list"')
                           .replace('role="doc-biblioentry"', 'role="listitem"'))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _list_roles)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
