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
        listed = [n.strip() for n in re.search(r":members:(.*)", options).group(1).split(",")
                  if n.strip()]  # ":members: a, b" documents those alone
        module = importlib.import_module(module_name)
        found += [(module_name, name, getattr(module, name))
                  for name in listed or getattr(module, "__all__", ()) if name not in skip]
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


def _reads_as_a_type(text: str) -> bool:
    """Whether Napoleon would print the start of an attribute's docstring as its type: it
    reads "words: more" (a colon and a space outside roles and literals) as "type: text"."""
    first = text.strip().split("\n\n")[0]
    return ": " in re.sub(r"`[^`]*`", "", re.sub(r":\w+:`[^`]*`", "", first))


def _attribute_docs(module: str, name: str, obj: object) -> list[tuple[str, str | None]]:
    """``(name, doc)`` of what autodoc shows as attributes under a documented object: a
    ``NamedTuple``'s fields (their ``#:`` comments, None without), a class's properties,
    and a module-level alias (its docstring below it)."""
    from sphinx.pycode import ModuleAnalyzer

    if inspect.isroutine(obj):
        return []
    if not inspect.isclass(obj):  # a module-level constant or type alias
        doc = ModuleAnalyzer.for_module(module).find_attr_docs().get(("", name))
        return [(name, " ".join(doc))] if doc else []
    comments = ModuleAnalyzer.for_module(obj.__module__).find_attr_docs()
    found: list[tuple[str, str | None]] = []
    if issubclass(obj, tuple) and hasattr(obj, "_fields"):
        found += [(f"{name}.{field}",
                   " ".join(comments[obj.__qualname__, field])
                   if (obj.__qualname__, field) in comments else None)
                  for field in obj._fields]
    found += [(f"{name}.{attr}", inspect.getdoc(value) or "")
              for attr, value in vars(obj).items()
              if isinstance(value, property) and not attr.startswith("_")]
    return found


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_every_attribute_says_what_it_holds(page: Path) -> None:
    """A ``NamedTuple`` field without a ``#:`` comment is shown as "Alias for field
    number 0": each documented field needs its comment, which autodoc shows instead. No
    field comment, property docstring or module-level alias docstring may start with
    "words: ", which Napoleon prints as the attribute's type."""
    bare, typed = [], []
    for module, name, obj in _documented(page):
        docs = _attribute_docs(module, name, obj)
        bare += [what for what, doc in docs if doc is None]
        typed += [f"{what}: {doc}" for what, doc in docs if doc and _reads_as_a_type(doc)]
    assert not bare, f"{page.name} shows these fields as 'Alias for field number': {bare}"
    assert not typed, f"{page.name}: these would print their start as a type: {typed}"
