"""The API reference pages (``reference/*.md``) document each object once per page.

A module that re-exports another module's names (``byhand.train`` re-exports the steps
and the evaluation) lists them in ``__all__``, and ``automodule`` with ``:members:``
documents everything in ``__all__``; where the home module sits on the same page, the
re-exports must be left out with ``:exclude-members:``, or the reader meets them twice.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parent.parent / "reference"
_DIRECTIVE = re.compile(r"^\.\. automodule:: (\S+)\n((?:   :.*\n(?:      .*\n)*)*)", re.M)


def _documented(page: Path) -> list[tuple[str, str, object]]:
    """``(module, name, object)`` for every member an ``automodule`` on ``page`` documents."""
    found = []
    for module_name, options in _DIRECTIVE.findall(page.read_text(encoding="utf-8")):
        if ":members:" not in options:
            continue
        excluded = re.search(r":exclude-members:((?:.*\n)(?:      .*\n)*)", options)
        skip = {n.strip() for n in excluded.group(1).split(",")} if excluded else set()
        module = importlib.import_module(module_name)
        found += [(module_name, name, getattr(module, name))
                  for name in getattr(module, "__all__", ()) if name not in skip]
    return found


PAGES = sorted(REFERENCE.glob("*.md"))


def test_the_pages_are_found() -> None:
    assert len(PAGES) > 20
    assert any(_documented(page) for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_no_object_is_documented_twice_on_a_page(page: Path) -> None:
    homes: dict[int, list[str]] = {}
    for module, name, obj in _documented(page):
        if inspect.isfunction(obj) or inspect.isclass(obj):
            homes.setdefault(id(obj), []).append(f"{module}.{name}")
    twice = [names for names in homes.values() if len(names) > 1]
    assert not twice, f"{page.name} documents these objects more than once: {twice}"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_every_named_tuple_field_says_what_it_holds(page: Path) -> None:
    """A ``NamedTuple`` field without a ``#:`` comment is shown as "Alias for field
    number 0": each documented field needs its comment, which autodoc shows instead, and
    the comment must not start with "words: ", which Napoleon prints as the field's type."""
    from sphinx.pycode import ModuleAnalyzer

    bare, typed = [], []
    for _, name, obj in _documented(page):
        if not (inspect.isclass(obj) and issubclass(obj, tuple) and hasattr(obj, "_fields")):
            continue
        comments = ModuleAnalyzer.for_module(obj.__module__).find_attr_docs()
        for field in obj._fields:
            comment = " ".join(comments.get((obj.__qualname__, field), []))
            if not comment:
                bare.append(f"{name}.{field}")
            elif ": " in re.sub(r"`[^`]*`", "", re.sub(r":\w+:`[^`]*`", "", comment)):
                typed.append(f"{name}.{field}: {comment}")
    assert not bare, f"{page.name} shows these fields as 'Alias for field number': {bare}"
    # Napoleon reads "text: more" in an attribute's comment as "type: description".
    assert not typed, f"{page.name}: these comments would print their start as a type: {typed}"
