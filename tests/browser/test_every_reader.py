"""Every page of the built book in every reader's hands: on a laptop (1366x900) and a
phone (390x844), in light and dark mode, for a screen reader, and on a slow phone.

Each page of the table of contents is opened once at each size, with requests leaving
this machine blocked, and audited (two pages at a time, one per core):

- axe-core (vendored in ``vendor/axe.min.js``, WCAG 2.0/2.1 A and AA, plus
  label-content-name-mismatch) in light mode with everything a reader can open opened
  (solutions, hidden cells: a superset of the page as it loads), then colour contrast
  again in dark mode: no violation of impact serious or critical may remain;
- the widest element: no page may be wider than the screen;
- the smallest text of each figure when the figure is shown 342 px wide on the phone;
- the bytes the page loads and, for a chapter on the phone with the CPU slowed down 4x
  as a mid-range phone is, how long after the start of loading MathJax has typeset what
  is on screen (read first, one chapter at a time, with no other page open).

The figures are printed per page, so ``pytest -s tests/browser`` shows them; a phone
screenshot of each page that is not a chapter goes to ``_build/screenshots/``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from book_browser import (
    CHAPTER_PAGES,
    CHROMIUM_FLAGS,
    HTML,
    SCREENSHOTS,
    TYPESET_ALL_JS,
    Visit,
    _pages,
    find_browser,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

PAGES = _pages()
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
SIZES = {"desktop": DESKTOP, "phone": PHONE}
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
#: The phone's text column: what a figure shrinks to.
PHONE_COLUMN_PX = 342
#: The smallest figure text, in CSS pixels, on that column.
MIN_FIGURE_PX = 9.0
#: A chapter's MathJax must be done this long after the start of loading, on a phone at
#: a quarter of this machine's speed. Before lazy typesetting the chapters took 5.7 to
#: 11.6 s; with it the slowest takes about 2.7 s on a two-core machine running other work
#: too, and took 4.1 s on a day when everything on that machine ran 30-45% slower. The
#: limit lies between that day and the 5.7 s it would take without lazy typesetting.
MAX_TYPESET_MS_ON_A_PHONE = 5000
#: What a chapter may weigh, all its files together (4.0-4.6 MB with fontawesome.js).
MAX_CHAPTER_BYTES = 3_600_000
#: Icons in the phone's header bar, menu buttons included (8 before: full screen, repository).
MAX_PHONE_HEADER_ICONS = 6
#: Pages audited at once, one per processor of a two-core machine: axe-core's runs take
#: most of the audit, and each page runs them on its own renderer process.
AUDIT_WORKERS = 2

# Record when MathJax has finished its first typesetting pass, from the page's own clock.
_TYPESET_CLOCK = """
(() => {
  const hook = () => {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise && !window.__bookHooked) {
      window.__bookHooked = true;
      mj.startup.promise.then(() => { window.__bookTypesetAt = performance.now(); });
    }
    if (!window.__bookHooked) window.setTimeout(hook, 2);
  };
  hook();
})();
"""

_TYPESET_DONE = "() => !window.MathJax || window.__bookTypesetAt !== undefined"

_AXE_RUN = """
async (rules) => {
  const options = rules
    ? {runOnly: {type: 'rule', values: rules}, resultTypes: ['violations']}
    : {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
       rules: {'label-content-name-mismatch': {enabled: true},
               'aria-deprecated-role': {enabled: true}}, resultTypes: ['violations']};
  const result = await axe.run(document, options);
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, nodes: v.nodes.length,
    targets: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
  }));
}
"""

_MEASURE_JS = """
async (column) => {
  const main = document.querySelector('main') || document.body;
  // The widest element outside any box that scrolls or clips on its own.
  const clips = el => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden' || o === 'clip') return true;
    }
    return false;
  };
  let widest = {right: 0, what: ''};
  const content = document.querySelector('.bd-main') || document.body;
  for (const el of content.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= widest.right || clips(el)) continue;
    if (el.closest('.bd-sidebar-secondary, .bd-sidebar-primary, dialog')) continue;
    widest = {right: Math.round(r.right),
              what: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                    + (el.className && typeof el.className === 'string'
                       ? '.' + el.className.trim().split(/\\s+/).join('.') : '')};
  }
  // The smallest text of each SVG figure, at the phone column's width.
  const figures = [];
  for (const img of main.querySelectorAll('img')) {
    const src = img.currentSrc || img.src;
    if (!/\\.svg($|\\?)/.test(src)) continue;
    const text = await (await fetch(src)).text();
    const svg = new DOMParser().parseFromString(text, 'image/svg+xml').documentElement;
    const box = (svg.getAttribute('viewBox') || '').split(/[\\s,]+/).map(Number);
    const width = box.length === 4 ? box[2] : parseFloat(svg.getAttribute('width'));
    const declared = svg.getAttribute('width') || '';
    const widthPx = parseFloat(declared) * (/pt$/.test(declared) ? 4 / 3 : 1);
    const shown = Math.min(column, widthPx);
    const sizes = [];
    const font = /font(?:-size)?:\\s*(?:[a-z]+\\s+)*([0-9.]+)px/g;
    for (const m of text.matchAll(font)) sizes.push(parseFloat(m[1]));
    if (!sizes.length) continue;
    const figure = img.closest('figure');
    const caption = figure && figure.querySelector('figcaption');
    figures.push({src: src.split('/').pop(),
                  caption: caption ? caption.innerText.trim().slice(0, 40) : '',
                  smallest: Math.round(Math.min(...sizes) * shown / width * 10) / 10});
  }
  const entries = [performance.getEntriesByType('navigation')[0],
                   ...performance.getEntriesByType('resource')];
  return {
    pageWidth: document.documentElement.scrollWidth,
    viewportWidth: window.innerWidth,
    widest, figures,
    bytes: entries.reduce((sum, e) => sum + (e.decodedBodySize || 0), 0),
    requests: entries.length,
    scripts: entries.filter(e => /\\.js($|\\?)/.test(e.name)).map(e => e.name.split('/').pop().split('?')[0]),
  };
}
"""

_HEADER_ICONS_JS = """
() => {
  const bar = document.querySelector('.bd-header-article') || document.body;
  return Array.from(bar.querySelectorAll('button, a.btn, .dropdown > button, label.sidebar-toggle'))
    .filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0
                    && getComputedStyle(el).visibility !== 'hidden' && !el.closest('.dropdown-menu'); })
    .map(el => el.getAttribute('aria-label') || el.title || el.className);
}
"""


def _page_id(page: str) -> str:
    return page.removesuffix(".html").replace("/", "_")


def _serious(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def _open_everything(page) -> None:
    page.evaluate("""() => {
      document.querySelectorAll('details').forEach(d => { d.open = true; });
      document.querySelectorAll('.toggle-hidden').forEach(el => el.classList.remove('toggle-hidden'));
    }""")


def _typeset_everything(page) -> None:
    page.evaluate(TYPESET_ALL_JS)


def _typeset_ms(browser, server: str, page: str) -> float | None:
    """When MathJax has typeset what is on screen, after the start of loading, on a phone
    with the CPU slowed down 4x; read with no other page open, so nothing competes."""
    visit = Visit(browser, server + page, viewport=PHONE, init_script=_TYPESET_CLOCK,
                  cpu_slowdown=4)
    try:
        visit.page.wait_for_function(_TYPESET_DONE, timeout=60_000)
        return visit.page.evaluate("() => window.__bookTypesetAt ?? null")
    finally:
        visit.close()


#: What the page's scripts do a moment after a change: every box that scrolls sideways is
#: a tab stop (book.js's SCROLLERS; the theme's own script gives some of them theirs), and
#: the solutions' buttons are named.
_TAB_STOPS_GIVEN = """() => [...document.querySelectorAll(
  'div.math > mjx-container, div.cell_output pre, div.highlight pre')].every(
  el => el.scrollWidth <= el.clientWidth + 1 || el.tabIndex >= 0)"""
_TOGGLES_NAMED = """() => [...document.querySelectorAll('.solution button.toggle-button')]
  .some(b => (b.getAttribute('aria-label') || '').includes('olution'))"""


def _wait_until(page, condition: str, timeout_ms: int = 15_000) -> None:
    """Wait until ``condition`` holds, however loaded the machine; if it never does, go
    on, and the check that follows reports what is missing."""
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(condition, timeout=timeout_ms)


#: Switch to the dark theme and make the browser compute the new styles at once, so that
#: the theme's colour transitions start now rather than at the next frame.
_DARK_JS = """() => {
  document.documentElement.setAttribute('data-theme', 'dark');
  getComputedStyle(document.body).color;
}"""

#: The contrast is read once the colours have settled: no CSS transition still running
#: (a fixed wait was too short on a loaded machine, and axe then read a colour mid-way).
_NO_TRANSITION_RUNNING = """() => document.getAnimations().every(
  a => !(a instanceof CSSTransition) || a.playState !== 'running')"""


def _audit(browser, server: str, page: str, size: str, axe: str) -> dict:
    visit = Visit(browser, server + page, viewport=SIZES[size], init_script=_TYPESET_CLOCK)
    try:
        p = visit.page
        p.wait_for_function(_TYPESET_DONE, timeout=60_000)
        measured = p.evaluate(_MEASURE_JS, PHONE_COLUMN_PX)
        header_icons = p.evaluate(_HEADER_ICONS_JS)
        if size == "phone" and not page.startswith("chapters/"):
            p.screenshot(path=str(SCREENSHOTS / f"{_page_id(page)}_phone.png"))
        p.add_script_tag(content=axe)
        # Everything a reader can open or scroll to: solutions, hidden cells, maths.
        _open_everything(p)
        _typeset_everything(p)
        _wait_until(p, _TAB_STOPS_GIVEN)  # book.js gives the boxes that now scroll a tab stop
        light = p.evaluate(_AXE_RUN, None)
        p.evaluate(_DARK_JS)
        p.wait_for_function(_NO_TRANSITION_RUNNING, timeout=30_000)
        dark = p.evaluate(_AXE_RUN, ["color-contrast", "link-in-text-block"])
        return {"typeset_ms": None, **measured, "header_icons": header_icons,
                "axe": {"light": light, "dark": dark},
                "errors": visit.errors}
    finally:
        visit.close()


def _audit_all(server: str, jobs: list[tuple[str, str]], axe: str) -> dict[tuple[str, str], dict]:
    """:func:`_audit` of every ``(page, size)``, :data:`AUDIT_WORKERS` at a time, each
    worker a thread with a Chromium of its own (Playwright's sync API belongs to the
    thread that starts it). The result is in the order of ``jobs``."""
    from playwright.sync_api import sync_playwright

    executable, _ = find_browser()
    pending: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
    for job in jobs:
        pending.put(job)
    done: dict[tuple[str, str], dict] = {}
    failures: list[BaseException] = []

    def work() -> None:
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
                while not failures:
                    try:
                        page, size = pending.get_nowait()
                    except queue.Empty:
                        break
                    done[page, size] = _audit(browser, server, page, size, axe)
                browser.close()
        except BaseException as error:  # re-raised in the test's thread below
            failures.append(error)

    workers = [threading.Thread(target=work) for _ in range(AUDIT_WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]
    return {job: done[job] for job in jobs}


@pytest.fixture(scope="module")
def audit(browser, server: str) -> Iterator[dict[tuple[str, str], dict]]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    axe = AXE.read_text(encoding="utf-8")
    typeset = {page: _typeset_ms(browser, server, page) for page in CHAPTER_PAGES}
    results = _audit_all(server, [(page, size) for size in SIZES for page in PAGES], axe)
    for page, ms in typeset.items():
        results[page, "phone"]["typeset_ms"] = ms
    rows = []
    for (page, size), seen in results.items():
        counts = {mode: sum(v["nodes"] for v in _serious(found))
                  for mode, found in seen["axe"].items()}
        smallest = min((f["smallest"] for f in seen["figures"]), default=None)
        rows.append({"page": page, "size": size, "axe_serious_nodes": counts,
                     "widest_px": seen["widest"]["right"], "widest": seen["widest"]["what"],
                     "smallest_figure_px": smallest, "bytes": seen["bytes"],
                     "requests": seen["requests"], "typeset_ms": seen["typeset_ms"]})
    print("\nper page and size (axe: serious or critical nodes; typeset: chapters on the phone "
          "at 4x slowdown):")
    for row in rows:
        typeset = "-" if row["typeset_ms"] is None else f"{row['typeset_ms']:.0f} ms"
        print(f"  {row['page']:<45} {row['size']:<7} axe {row['axe_serious_nodes']} "
              f"widest {row['widest_px']} px, figure text >= {row['smallest_figure_px']} px, "
              f"{row['bytes'] / 1e6:.2f} MB in {row['requests']} requests, typeset {typeset}")
    (SCREENSHOTS.parent / "reader-audit.json").write_text(json.dumps(rows, indent=1))
    yield results


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("page", PAGES)
def test_no_serious_accessibility_violation(audit, page: str, size: str) -> None:
    found = {mode: _serious(v) for mode, v in audit[page, size]["axe"].items()}
    assert not any(found.values()), json.dumps(found, indent=1)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("page", PAGES)
def test_no_page_is_wider_than_the_screen(audit, page: str, size: str) -> None:
    seen = audit[page, size]
    assert seen["pageWidth"] <= seen["viewportWidth"], (
        f"{page} is {seen['pageWidth']} px wide on a {seen['viewportWidth']} px {size}; "
        f"the widest element is {seen['widest']}")


@pytest.mark.parametrize("page", PAGES)
def test_figure_text_is_legible_on_a_phone(audit, page: str) -> None:
    small = [f for f in audit[page, "phone"]["figures"] if f["smallest"] < MIN_FIGURE_PX]
    assert not small, f"figures whose smallest text is under {MIN_FIGURE_PX} px at 342 px: {small}"


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_chapters_are_light_and_typeset_fast_on_a_phone(audit, page: str) -> None:
    seen = audit[page, "phone"]
    assert not [s for s in seen["scripts"] if s.startswith("fontawesome")], seen["scripts"]
    assert seen["bytes"] <= MAX_CHAPTER_BYTES, f"{page} loads {seen['bytes']:,} bytes"
    assert seen["typeset_ms"] is not None and seen["typeset_ms"] <= MAX_TYPESET_MS_ON_A_PHONE, (
        f"{page}: MathJax done {seen['typeset_ms']} ms after the start on a slow phone")


def test_the_phone_header_is_not_crowded(audit) -> None:
    icons = audit[PAGES[1], "phone"]["header_icons"]
    assert len(icons) <= MAX_PHONE_HEADER_ICONS, icons
    assert not [i for i in icons if "fullscreen" in i.lower()], icons


def test_the_intro_next_link_is_whole_on_a_phone(browser, server: str) -> None:
    visit = Visit(browser, server + PAGES[0], viewport=PHONE)
    try:
        box = visit.page.evaluate("""() => {
          const a = document.querySelector('a.right-next');
          const title = a.querySelector('.prev-next-title');
          const r = a.getBoundingClientRect();
          return {left: r.left, right: r.right, clipped: title.scrollWidth > title.clientWidth + 1,
                  text: title.innerText};
        }""")
        assert box["left"] >= 0 and box["right"] <= PHONE["width"], box
        assert not box["clipped"], box
    finally:
        visit.close()


def test_solution_toggles_are_named_after_their_exercise(browser, server: str) -> None:
    page = next(p for p in PAGES if p.startswith("chapters/05"))
    visit = Visit(browser, server + page)
    try:
        visit.page.wait_for_selector("button.toggle-button", state="attached")
        _wait_until(visit.page, _TOGGLES_NAMED)
        names = visit.page.eval_on_selector_all(
            ".solution button.toggle-button, .admonition button.toggle-button",
            "els => els.map(e => e.getAttribute('aria-label'))")
        solutions = [n for n in names if n and "olution" in n]
        assert solutions and all(re.fullmatch(r"Show solution to Exercise 5\.\d+", n)
                                 for n in solutions), names
        button = visit.page.locator("button.toggle-button").first
        button.click()
        assert button.get_attribute("aria-label").startswith("Hide ")
    finally:
        visit.close()


def test_the_appendix_is_lettered(browser, server: str) -> None:
    page = next(p for p in PAGES if "appendix" in p)
    visit = Visit(browser, server + page)
    try:
        title = visit.page.locator("article.bd-article h1").first.inner_text()
        assert re.match(r"Appendix A\.\s", title), title
        captions = visit.page.locator("figcaption").all_inner_texts()
        assert captions and all(c.startswith("Figure A.") for c in captions), captions
        sidebar = visit.page.locator("nav.bd-links").inner_text()
        assert "A. " in sidebar and not re.search(r"\b\d+\. Half precision", sidebar), sidebar
    finally:
        visit.close()


def test_the_bibliography_is_in_author_year_order(browser, server: str) -> None:
    visit = Visit(browser, server + "bibliography.html", viewport=PHONE)
    try:
        labels = visit.page.locator("div.citation span.label").all_inner_texts()
        names = [re.sub(r"^[\[(]|[\])]$", "", label).rsplit(", ", 1)[0].lower()
                 for label in labels]
        assert len(labels) >= 30 and names == sorted(names), labels
        assert "pytorch docs" in names and "pytorch forums" in names
    finally:
        visit.close()


def test_the_intro_links_to_the_pdf_edition(browser, server: str) -> None:
    visit = Visit(browser, server + PAGES[0])
    try:
        hrefs = visit.page.eval_on_selector_all("a[href$='.pdf']", "els => els.map(e => e.href)")
        assert hrefs, "the intro links to the PDF edition"
        if not (HTML / "backprop-by-hand.pdf").exists():
            pytest.skip("the PDF edition is not built: run `make pdf`")
        assert all(visit.page.request.get(h).ok for h in hrefs), hrefs
    finally:
        visit.close()
