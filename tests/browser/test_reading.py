"""The built book as a reader sees it, on a laptop (1366x900) and on a phone (390x844).

Every chapter page is opened at both sizes, with every request outside this machine
blocked, and checked for what makes a page read like a textbook rather than a test
harness: a numbered title, no page wider than the screen, captioned figures with real
alt text, no stderr block, no bookkeeping code on show, glued numbers in the weight of
the text, and equations that fit. A desktop and a phone screenshot of every chapter are
saved to ``_build/screenshots/``. Every page of the API reference is opened once, on the
phone, for its equations. ``make book`` (or ``make book-strict``) must have run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from book_browser import CHAPTER_PAGES, REFERENCE_PAGES, SCREENSHOTS, TYPESET_ALL_JS, Visit, _pages

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
SIZES = {"desktop": DESKTOP, "phone": PHONE}

#: The longest line of teaching code a chapter shows (its visible code cells and code
#: blocks), in characters: about what a phone's column holds.
MAX_CODE_LINE = 60

# Everything a page should show, gathered in one pass per page and size.
_SURVEY_JS = """
() => {
  const main = document.querySelector('main') || document.body;
  const visible = el => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
  };
  // The code a reader sees before opening anything (hide-input cells stay collapsed).
  const code = Array.from(main.querySelectorAll('div.cell_input, div.highlight'))
    .filter(visible).map(el => el.innerText);
  // Its lines, outputs and folded cells left out, and the package's own source quoted
  // as it is (class package-source). A block off screen is not laid out: read its text.
  const codeLines = Array.from(main.querySelectorAll('div.highlight pre'))
    .filter(el => visible(el)
            && !el.closest('.cell_output, .output, details:not([open]), .package-source'))
    .flatMap(el => el.textContent.replace(/\\n$/, '').split('\\n'));
  // Then open every collapsed solution and toggled block, so hidden equations count too.
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden')
    .forEach(el => el.classList.remove('toggle-hidden'));
  // The article's own title (the print-only copy above it has no number).
  const h1 = main.querySelector('article.bd-article h1') || main.querySelector('h1');
  const images = Array.from(main.querySelectorAll('.cell_output img, figure img'));
  const figures = images.map(img => {
    const figure = img.closest('figure');
    const caption = figure ? figure.querySelector('figcaption') : null;
    return {src: img.getAttribute('src') || '', alt: img.getAttribute('alt') || '',
            caption: caption ? caption.innerText.trim() : null,
            width: img.getBoundingClientRect().width};
  });
  // A display equation scrolls inside its mjx-container, which must then show a cue. It is
  // named by its label, or by its TeX.
  const items = window.MathJax && MathJax.startup && MathJax.startup.document
    ? Array.from(MathJax.startup.document.math) : [];
  const equations = Array.from(main.querySelectorAll('div.math')).filter(visible).map(el => {
    const box = el.querySelector('mjx-container') || el;
    const style = getComputedStyle(box);
    const item = items.find(m => m.typesetRoot === box);
    const tex = item ? item.math.replace(/\\s+/g, ' ').trim() : (el.textContent || '');
    const math = box.querySelector('mjx-math');
    const number = el.querySelector(':scope > span.eqno');
    const rect = r => { const b = r.getBoundingClientRect();
                        return {top: b.top, bottom: b.bottom, left: b.left, right: b.right}; };
    return {
      id: el.id || tex.slice(0, 80),
      overflow: Math.max(el.scrollWidth - el.clientWidth, box.scrollWidth - box.clientWidth),
      wider: box.getBoundingClientRect().right > el.getBoundingClientRect().right + 1,
      cue: /radial-gradient/.test(style.backgroundImage) && /auto|scroll/.test(style.overflowX),
      math: math ? rect(math) : null,
      number: number ? rect(number) : null,
    };
  });
  const stderr = Array.from(main.querySelectorAll('.output.stderr, .stderr')).filter(visible).length;
  const pasted = Array.from(main.querySelectorAll('span.pasted-text')).map(el => [
    getComputedStyle(el).fontWeight, getComputedStyle(el.parentElement).fontWeight]);
  return {
    title: h1 ? h1.innerText : '',
    numbered: !!(h1 && h1.querySelector('.section-number')),
    pageWidth: document.documentElement.scrollWidth,
    viewportWidth: window.innerWidth,
    figures, equations, code, codeLines, stderr, pasted,
  };
}
"""


def _wait_for_mathjax(page) -> None:
    """Wait until MathJax has typeset the page (at once on a page without mathematics)."""
    page.wait_for_function(
        "() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise"
        " && (window.MathJax.startup.promise.then(() => window.__typeset = true), window.__typeset))",
        timeout=30_000)
    page.evaluate(TYPESET_ALL_JS)
    page.wait_for_timeout(200)


def _page_id(page: str) -> str:
    return page.removesuffix(".html").replace("/", "_")


@pytest.fixture(scope="module")
def survey(browser, server: str) -> Iterator[dict[tuple[str, str], dict]]:
    """Open each chapter at both sizes once, screenshot it, and record what it shows."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, str], dict] = {}
    for size, viewport in SIZES.items():
        for page in CHAPTER_PAGES:
            visit = Visit(browser, server + page, viewport=viewport)
            try:
                _wait_for_mathjax(visit.page)
                visit.page.screenshot(path=str(SCREENSHOTS / f"{_page_id(page)}_{size}.png"),
                                      full_page=False)
                results[page, size] = visit.page.evaluate(_SURVEY_JS)
            finally:
                visit.close()
    yield results


#: What MathJax typesets in place of TeX it cannot read: an error box, or an undefined
#: macro's name in red.
_MATH_ERRORS_JS = """() => document.querySelectorAll(
  'mjx-merror, mjx-mtext[style*="color: red"]').length"""


@pytest.fixture(scope="module")
def reference_survey(browser, server: str) -> Iterator[dict[str, dict]]:
    """Open each page of the API reference once, on the phone, in one browser tab."""
    results: dict[str, dict] = {}
    visit = Visit(browser, server + REFERENCE_PAGES[0], viewport=PHONE)
    try:
        for page in REFERENCE_PAGES:
            if page != REFERENCE_PAGES[0]:
                visit.page.goto(server + page, wait_until="load")
            _wait_for_mathjax(visit.page)
            results[page] = visit.page.evaluate(_SURVEY_JS)
            results[page]["mathErrors"] = visit.page.evaluate(_MATH_ERRORS_JS)
    finally:
        visit.close()
    yield results


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_no_page_is_wider_than_the_screen(survey, page: str, size: str) -> None:
    seen = survey[page, size]
    assert seen["pageWidth"] <= seen["viewportWidth"], (
        f"{page} is {seen['pageWidth']} px wide on a {seen['viewportWidth']} px {size}")


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_chapter_title_is_numbered(survey, page: str) -> None:
    seen = survey[page, "desktop"]
    assert seen["numbered"], f"{page}: the title {seen['title']!r} carries no chapter number"
    assert re.match(r"(\d+|Appendix [A-Z])\.\s", seen["title"]), seen["title"]


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_every_figure_is_numbered_captioned_and_described(survey, page: str) -> None:
    figures = survey[page, "desktop"]["figures"]
    for figure in figures:
        assert figure["caption"], f"{page}: an image without a caption: {figure['src']}"
        assert re.match(r"Figure (\d+|[A-Z])\.\d+", figure["caption"]), figure["caption"]
        alt = figure["alt"].strip()
        assert len(alt) >= 20, f"{page}: alt text too short to describe the figure: {alt!r}"
        assert not re.fullmatch(r"[0-9a-f]{16,}(\.\w+)?", alt), f"{page}: alt text is a hash: {alt!r}"


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_figures_fit_the_phone_column(survey, page: str) -> None:
    for figure in survey[page, "phone"]["figures"]:
        assert figure["width"] <= PHONE["width"], figure


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_no_stderr_reaches_the_page(survey, page: str) -> None:
    assert survey[page, "desktop"]["stderr"] == 0, f"{page} shows a stderr block"


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_no_bookkeeping_code_is_shown(survey, page: str) -> None:
    for code in survey[page, "desktop"]["code"]:
        assert "glue(" not in code, f"{page} shows a glue(...) line:\n{code[:300]}"
        assert "%pip install" not in code, f"{page} shows the install cell"


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_glued_numbers_read_in_the_weight_of_the_text(survey, page: str) -> None:
    for own, parent in survey[page, "desktop"]["pasted"]:
        assert own == parent, f"{page}: a glued number has font-weight {own}, its text {parent}"


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_equations_fit_a_laptop_screen(survey, page: str) -> None:
    wide = [e["id"] for e in survey[page, "desktop"]["equations"] if e["overflow"] > 1]
    assert wide == [], f"{page}: display equations wider than the column at 1366 px: {wide}"


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_equations_fit_a_phone_column(survey, page: str) -> None:
    """No display equation scrolls at 390 px, solutions opened: its number goes below it
    there (``_static/book.css``), and the long ones are split into rows."""
    wide = [e["id"] for e in survey[page, "phone"]["equations"] if e["overflow"] > 1]
    assert wide == [], f"{page}: display equations wider than the column at 390 px: {wide}"


@pytest.mark.parametrize("page", REFERENCE_PAGES)
def test_reference_equations_fit_a_phone_column(reference_survey, page: str) -> None:
    """The docstrings' display equations too: none scrolls at 390 px (long ones are split
    into aligned rows in the source), none fails to typeset, and the page is no wider than
    the phone."""
    seen = reference_survey[page]
    wide = [e["id"] for e in seen["equations"] if e["overflow"] > 1 or e["wider"]]
    assert wide == [], f"{page}: display equations wider than the column at 390 px: {wide}"
    assert seen["mathErrors"] == 0, f"{page}: {seen['mathErrors']} equations MathJax cannot typeset"
    assert seen["pageWidth"] <= seen["viewportWidth"], (
        f"{page} is {seen['pageWidth']} px wide on a {seen['viewportWidth']} px phone")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_equation_numbers_sit_beside_on_a_laptop_and_below_on_a_phone(
        survey, page: str, size: str) -> None:
    for e in survey[page, size]["equations"]:
        math, number = e["math"], e["number"]
        if not (math and number):
            continue
        if size == "desktop":
            beside = number["left"] >= math["right"] and number["top"] < math["bottom"]
            assert beside, f"{page}: the number of {e['id']} is not to the right of it"
        else:
            below = number["top"] >= math["bottom"] - 2
            assert below, f"{page}: the number of {e['id']} is not below it on a phone"


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_teaching_code_fits_a_phone_column(survey, page: str) -> None:
    lines = survey[page, "phone"]["codeLines"]
    long = [line for line in lines if len(line) > MAX_CODE_LINE]
    assert long == [], f"{page}: code lines over {MAX_CODE_LINE} characters: {long}"


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_an_equation_that_scrolls_shows_it(survey, page: str) -> None:
    """The box that scrolls carries the shadow cue, and nothing sticks out of the column."""
    for size in SIZES:
        for e in survey[page, size]["equations"]:
            assert not e["wider"], f"{page} ({size}): {e['id']} sticks out of its column"
            if e["overflow"] > 1:
                assert e["cue"], f"{page} ({size}): {e['id']} scrolls with no visible cue"


@pytest.mark.parametrize("toggle, dialog", [
    (".primary-toggle", "#pst-primary-sidebar-modal"),
    (".secondary-toggle", "#pst-secondary-sidebar-modal"),
])
def test_phone_menus_open(browser, server: str, toggle: str, dialog: str) -> None:
    visit = Visit(browser, server + CHAPTER_PAGES[0], viewport=PHONE)
    try:
        buttons = [b for b in visit.page.locator(toggle).all() if b.is_visible()]
        assert len(buttons) == 1, f"{len(buttons)} visible {toggle} buttons on a phone"
        buttons[0].click()
        modal = visit.page.locator(dialog)
        modal.wait_for(state="visible", timeout=5_000)
        assert modal.evaluate("d => d.open"), f"{dialog} did not open"
        links = [a for a in modal.locator("a").all() if a.is_visible()]
        assert links, f"{dialog} opened empty"
        visit.page.screenshot(path=str(SCREENSHOTS / f"menu_{toggle.strip('.')}_phone.png"))
    finally:
        visit.close()


@pytest.mark.parametrize("size", SIZES)
def test_one_header_and_one_search_box(browser, server: str, size: str) -> None:
    visit = Visit(browser, server + CHAPTER_PAGES[0], viewport=SIZES[size])
    try:
        header = visit.page.locator("#pst-header")
        assert header.count() == 0 or not header.is_visible(), "the empty pydata header bar is back"
        fields = [f for f in visit.page.locator(".search-button-field").all() if f.is_visible()]
        assert len(fields) <= 1, f"{len(fields)} search boxes on the {size} page"
    finally:
        visit.close()


def test_the_survey_covers_every_chapter() -> None:
    assert set(CHAPTER_PAGES) == {p for p in _pages() if p.startswith("chapters/")}
    assert len(CHAPTER_PAGES) >= 9


def test_the_reference_survey_covers_every_reference_page() -> None:
    assert set(REFERENCE_PAGES) == {p for p in _pages() if p.startswith("reference/")}
    assert len(REFERENCE_PAGES) >= 20
