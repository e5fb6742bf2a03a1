"""Sphinx extension: how the book's pages are numbered and what they load.

- **Lettered appendices.** Jupyter Book numbers every part's chapters in one sequence,
  so the appendix came out as chapter 12 ("Figure 12.1"). The documents listed in the
  ``book_appendices`` setting are lettered instead, in order: A, B, ... Their sections,
  figures, equations and exercises read "A.1", the sidebar shows "A.", and the page title
  reads "Appendix A. ...". A ``{numref}`` to the appendix gives the letter.
- **Accessible names.** myst-nb names every "Show code cell source" summary "Toggle
  hidden content", which is not what it shows (WCAG 2.5.3): the page drops that label so
  the visible text names it. The sidebar's chevrons that open a section get a name
  ("Sections of API reference"); they had none.
- **No Font Awesome JavaScript.** pydata-sphinx-theme loads ``fontawesome.js`` (1.5 MB)
  to swap every ``<i class="fa-...">`` for an SVG, although its stylesheet already draws
  the same icons from the Font Awesome webfont it ships. The script tag is dropped from
  every page and the file from ``_static``; the icons come from the webfont.
"""

from __future__ import annotations

import html
import re
import string
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

APPENDIX_PREFIX = "Appendix "
_SIDEBAR_CHEVRON = re.compile(
    r'(<a class="[^"]*reference internal[^"]*" href="[^"]*">(?P<title>(?:(?!</a>).)*?)</a>'
    r'<details)(\s+open="open")?>'
    r'<summary>(?=<span class="toctree-toggle")')
_FONTAWESOME_SCRIPT = re.compile(
    r'[ \t]*<script[^>]*src="[^"]*_static/scripts/fontawesome\.js[^"]*"[^>]*></script>\n?')


def _letter(number: Any, letter: str) -> Any:
    """``(12, 3)`` -> ``("A", 3)``; a list stays a list, ``None`` stays ``None``."""
    if not number:
        return number
    lettered = (letter, *tuple(number)[1:])
    return list(lettered) if isinstance(number, list) else lettered


def letter_appendices(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """Replace the chapter number of each appendix by its letter, everywhere it is kept."""
    rewrite = []
    for index, docname in enumerate(app.config.book_appendices):
        if docname not in env.toc_secnumbers:
            continue
        letter = string.ascii_uppercase[index]
        secnums = env.toc_secnumbers[docname]
        for anchor, number in secnums.items():
            secnums[anchor] = _letter(number, letter)
        for kinds in env.toc_fignumbers.get(docname, {}).values():
            for ident, number in kinds.items():
                kinds[ident] = _letter(number, letter)
        # The numbers the sidebar and the previous/next links show.
        for reference in env.tocs[docname].findall(nodes.reference):
            if reference.get("secnumber"):
                reference["secnumber"] = _letter(reference["secnumber"], letter)
        title = env.titles.get(docname)
        if title is not None and title.get("secnumber"):
            title["secnumber"] = _letter(title["secnumber"], letter)
        rewrite.append(docname)
    return rewrite


def title_the_appendix(app: Sphinx, pagename: str, templatename: str,
                       context: dict[str, Any], doctree: object) -> None:
    """The appendix page's own title reads "Appendix A. Title"."""
    if pagename not in app.config.book_appendices:
        return
    body = context.get("body")
    if isinstance(body, str):
        context["body"] = re.sub(
            r'(<h1>\s*<span class="section-number">)([A-Z]\.)',
            lambda m: m.group(1) + APPENDIX_PREFIX + m.group(2), body, count=1)


def name_summaries(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                   doctree: object) -> None:
    """A folded cell's summary is named by the text it shows ("Show code cell source")."""
    body = context.get("body")
    if isinstance(body, str):
        context["body"] = body.replace('<summary aria-label="Toggle hidden content">', "<summary>")


def _name_chevron(match: re.Match[str]) -> str:
    title = html.unescape(re.sub(r"<[^>]+>", "", match.group("title"))).strip()
    return (f'{match.group(1)}{match.group(3) or ""}>'
            f'<summary aria-label="Sections of {html.escape(title, quote=True)}">')


def finish_pages(app: Sphinx, exception: Exception | None) -> None:
    """Name the sidebar's chevrons; drop fontawesome.js from every page and from _static."""
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    for page in out.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        stripped = _SIDEBAR_CHEVRON.sub(_name_chevron, _FONTAWESOME_SCRIPT.sub("", text))
        if stripped != text:
            page.write_text(stripped, encoding="utf-8")
    for name in ("fontawesome.js", "fontawesome.js.map", "fontawesome.js.LICENSE.txt"):
        (out / "_static" / "scripts" / name).unlink(missing_ok=True)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("book_appendices", [], "env", [list])
    # After the toctree collector (priority 500) has numbered every chapter.
    app.connect("env-get-updated", letter_appendices, priority=900)
    app.connect("html-page-context", title_the_appendix)
    app.connect("html-page-context", name_summaries)
    app.connect("build-finished", finish_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
