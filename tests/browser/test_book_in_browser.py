"""The built book in a real browser (headless Chromium), with every request outside
this machine blocked: pages load without console errors, MathJax renders equations
from the book's own files, launch links point at the chapter notebooks, internal links
resolve, figures are present, search finds things. ``make book`` must have run."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
from book_browser import CHAPTER_PAGES, SCREENSHOTS, TYPESET_ALL_JS, Visit, _pages

MATHS_PAGES = [*CHAPTER_PAGES, "notation.html"]


def _look(browser, server: str, page: str, statuses: dict[str, int]) -> dict:
    """One visit of ``page``: what the tests below check, read in one load. ``statuses``
    holds the HTTP status of every local link fetched so far, each fetched once."""
    visit = Visit(browser, server + page)
    try:
        p = visit.page
        p.wait_for_timeout(300)
        seen = {"errors": list(visit.errors), "blocked": list(visit.blocked),
                "h1": p.locator("h1").count(),
                "hrefs": p.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")}
        if page in CHAPTER_PAGES:
            seen["images"] = p.eval_on_selector_all(
                "main img", "els => els.map(e => [e.src, e.complete && e.naturalWidth])")
        if page in MATHS_PAGES:
            p.wait_for_selector("mjx-container", state="attached", timeout=20_000)
            p.evaluate(TYPESET_ALL_JS)
            seen["maths"] = p.locator("mjx-container").count()
            seen["maths_errors"] = p.locator("mjx-merror").count()
            seen["mathjax_sources"] = p.eval_on_selector_all(
                "script[src*='mathjax']", "els => els.map(e => e.src)")
        # The PDF edition is built by `make pdf`; test_every_reader checks its link.
        local = {h.split("#")[0] for h in seen["hrefs"]
                 if h.startswith(server) and not h.endswith(".pdf")}
        for href in sorted(local - statuses.keys()):
            statuses[href] = p.request.get(href).status
        seen["local_links"] = {href: statuses[href] for href in local}
        return seen
    finally:
        visit.close()


@pytest.fixture(scope="module")
def looked(browser, server: str) -> dict[str, dict]:
    """Every page of the table of contents, visited once (a page load is most of a test's
    time, and five checks read the same page)."""
    statuses: dict[str, int] = {}
    return {page: _look(browser, server, page, statuses) for page in _pages()}


@pytest.mark.parametrize("page", _pages())
def test_page_loads_offline_without_console_errors(looked, page: str) -> None:
    seen = looked[page]
    assert seen["errors"] == [], seen["errors"]
    assert seen["blocked"] == [], f"the page asked the network for {seen['blocked']}"
    assert seen["h1"] >= 1


@pytest.mark.parametrize("page", MATHS_PAGES)
def test_equations_are_rendered_by_local_mathjax(looked, server: str, page: str) -> None:
    seen = looked[page]
    assert seen["maths"] > 0
    assert seen["maths_errors"] == 0
    sources = seen["mathjax_sources"]
    assert sources and all(s.startswith(server) for s in sources), sources


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_launch_links_point_at_the_chapter_notebook(looked, page: str) -> None:
    notebook = page.removesuffix(".html") + ".ipynb"
    hrefs = looked[page]["hrefs"]
    colab = [h for h in hrefs if "colab.research.google.com" in h]
    binder = [h for h in hrefs if "mybinder.org" in h]
    assert colab and all(h.endswith(f"/blob/main/{notebook}") for h in colab), colab
    assert binder and all("/main?" in h and notebook in h for h in binder), binder
    downloads = [h for h in hrefs if h.endswith(".ipynb") and "_sources" in h]
    assert downloads, "the download button offers the .ipynb"


@pytest.mark.parametrize("page", _pages())
def test_internal_links_resolve(looked, page: str) -> None:
    broken = {href: status for href, status in looked[page]["local_links"].items()
              if not 200 <= status < 300}
    assert not broken, f"{page} links to pages that do not load: {broken}"


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_figures_are_present_and_decoded(looked, page: str) -> None:
    sizes = looked[page]["images"]
    figures = [s for s in sizes if "_images" in s[0] or s[0].startswith("data:image")]
    assert figures, "a chapter has at least one figure"
    assert all(width for _, width in figures), [s for s in figures if not s[1]]


def test_markdown_pages_offer_their_md_source(browser, server: str) -> None:
    visit = Visit(browser, server + "intro.html")
    try:
        hrefs = visit.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        assert any(h.endswith("intro.md") for h in hrefs), "download of the .md source"
        assert any("github.com/backprop-by-hand/backprop-by-hand/issues" in h for h in hrefs)
    finally:
        visit.close()


def test_search_finds_the_softmax_jacobian(browser, server: str) -> None:
    visit = Visit(browser, urljoin(server, "search.html?q=jacobian"))
    try:
        visit.page.wait_for_selector("ul.search li", timeout=20_000)
        results = visit.page.locator("ul.search li").all_inner_texts()
        assert any("softmax" in r.lower() for r in results), results
    finally:
        visit.close()


def test_previous_and_next_links(browser, server: str) -> None:
    visit = Visit(browser, server + CHAPTER_PAGES[1])
    try:
        assert visit.page.locator("a.left-prev").count() == 1
        assert visit.page.locator("a.right-next").count() == 1
    finally:
        visit.close()


def test_screenshot_of_a_chapter(browser, server: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    visit = Visit(browser, server + "chapters/03_softmax_jacobian.html")
    try:
        visit.page.wait_for_selector("mjx-container", state="attached", timeout=20_000)
        path = SCREENSHOTS / "03_softmax_jacobian.png"
        visit.page.screenshot(path=str(path), full_page=False)
        assert path.stat().st_size > 10_000
        heat_map = visit.page.locator("section#a-picture-of-the-jacobian img").first
        heat_map.scroll_into_view_if_needed()
        visit.page.evaluate("window.scrollBy(0, 200)")
        figure = SCREENSHOTS / "03_softmax_jacobian_heat_map.png"
        visit.page.screenshot(path=str(figure), full_page=False)
        assert figure.stat().st_size > 10_000
        print(f"\nscreenshots saved to {path} and {figure}")
    finally:
        visit.close()
