"""The PDF edition (``make pdf``, tools/print_book.py) holds the whole book as printed text.

Its text is extracted with ``pdftotext`` (poppler-utils) and checked against the HTML
book it was printed from: a title page and contents, every page's numbered title, every
figure caption and equation number, the bibliography; no interface text; and no code or
output line cut at the margin (the longest line of each chapter is there whole).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from functools import cache

import pytest
from book_browser import HTML, _pages

PDF = HTML / "backprop-by-hand.pdf"
#: The print stylesheet's body type (``@media print`` in ``_static/book.css``), in points.
BODY_PT = 10.5
#: How tall ``pdftotext -bbox`` boxes a word of DejaVu Sans (Debian's sans-serif, which
#: the body is printed in), in ems: the font's ascent plus its descent, 1901 + 483 units
#: of 2048.
DEJAVU_SANS_BOX_EM = (1901 + 483) / 2048
INTERFACE_TEXT = ("Show code cell", "Hide code cell", "Click to show", "Click to hide",
                  "Toggle hidden content", "Copy to clipboard", "Skip to main content")


@cache
def pdf_pages() -> list[str]:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is missing: install Debian's poppler-utils")
    if not PDF.exists():
        pytest.fail(f"the PDF edition is not built: run `make pdf` ({PDF} is missing)")
    text = subprocess.run(["pdftotext", "-layout", str(PDF), "-"], check=True,
                          capture_output=True, text=True).stdout
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")


def _flat(text: str) -> str:
    """Comparable text: NFKC, no whitespace at all (a wrapped line joins up again)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).replace("−", "-")


def _strip_tags(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def _html(page: str) -> str:
    return (HTML / page).read_text(encoding="utf-8")


def _title(page: str) -> str:
    article = _html(page).split('<article class="bd-article">', 1)[-1]
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", article, re.S)
    assert h1, page
    return re.sub(r"\s+", " ", _strip_tags(h1.group(1)).replace("#", "")).strip()


def test_the_pdf_has_a_title_page_contents_and_a_sensible_length() -> None:
    pages = pdf_pages()
    assert "Backprop by Hand" in pages[0]
    assert "Contents" in pages[1]
    assert 60 <= len(pages) <= 800, f"{len(pages)} pages"
    print(f"\n{PDF}: {len(pages)} pages, {PDF.stat().st_size / 1e6:.1f} MB")


def test_the_body_text_is_printed_at_its_size() -> None:
    """Chromium shrinks a whole printout to fit when one element is wider than the printed
    column: one equation was, and every page came out at 87% of its size (411 pages
    instead of 499). ``tools/print_book.py`` refuses to print then; this checks the
    result: the most common word height, the body text's, is that of 10.5 pt type."""
    fonts = subprocess.run(["pdffonts", str(PDF)], check=True, capture_output=True,
                           text=True).stdout
    assert "DejaVuSans" in fonts, f"the body is expected in DejaVu Sans; the PDF has\n{fonts}"
    boxes = subprocess.run(["pdftotext", "-bbox", str(PDF), "-"], check=True,
                           capture_output=True, text=True).stdout
    heights = Counter(round(float(y1) - float(y0), 1) for y0, y1 in re.findall(
        r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)"', boxes))
    body = heights.most_common(1)[0][0]
    assert body >= 0.98 * BODY_PT * DEJAVU_SANS_BOX_EM, (
        f"body words are {body} pt tall, {body / (BODY_PT * DEJAVU_SANS_BOX_EM):.0%} of "
        f"{BODY_PT} pt type: the print was shrunk to fit something too wide")


@pytest.mark.parametrize("page", _pages())
def test_every_page_is_in_the_pdf_with_its_numbered_title(page: str) -> None:
    title = _title(page)
    body = _flat("".join(pdf_pages()[2:]))
    assert _flat(title) in body, f"{page}: {title!r} is not in the PDF"
    assert _flat(title) in _flat(pdf_pages()[1] + pdf_pages()[2]), f"{title!r} not in the contents"


def test_chapters_keep_their_numbers_and_the_appendix_its_letter() -> None:
    titles = [_title(p) for p in _pages() if p.startswith("chapters/")]
    assert all(re.match(r"(\d+|Appendix [A-Z])\. ", t) for t in titles), titles


@pytest.mark.parametrize("page", [p for p in _pages() if p.startswith("chapters/")])
def test_figure_captions_and_equation_numbers_are_in_the_pdf(page: str) -> None:
    source = _html(page)
    body = _flat("".join(pdf_pages()))
    captions = [re.sub(r"\s+", " ", _strip_tags(c)).strip()
                for c in re.findall(r"<figcaption>(.*?)</figcaption>", source, re.S)]
    for caption in captions:
        assert _flat(caption[:60]) in body, f"{page}: caption {caption[:60]!r} missing"
    numbers = re.findall(r'<span class="eqno">\((\w+\.\d+)\)', source)
    for number in numbers:
        assert _flat(f"({number})") in body, f"{page}: equation ({number}) missing"


def test_the_bibliography_is_in_the_pdf() -> None:
    body = _flat("".join(pdf_pages()))
    for label in ("Meurer et al., 2017", "PyTorch Forums, 2020", "IEEE, 2019"):
        assert _flat(label) in body, label


def test_no_interface_text_is_printed() -> None:
    text = "".join(pdf_pages())
    assert not [t for t in INTERFACE_TEXT if t in text], [t for t in INTERFACE_TEXT if t in text]


@pytest.mark.parametrize("page", [p for p in _pages() if p.startswith("chapters/")])
def test_the_longest_code_and_output_lines_are_printed_whole(page: str) -> None:
    shown = re.sub(r'<details class="[^"]*\bhide\b.*?</details>', "", _html(page), flags=re.S)
    blocks = re.findall(r'<div class="highlight"><pre>(.*?)</pre>', shown, re.S)
    lines = [_strip_tags(line) for block in blocks for line in block.split("\n")]
    longest = sorted({line for line in lines if line.strip()}, key=len)[-3:]
    body = _flat("".join(pdf_pages()))
    for line in longest:
        assert _flat(line) in body, f"{page}: cut or missing in the PDF: {line!r}"
