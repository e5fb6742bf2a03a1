"""The built book in a real browser (headless Chromium), with every request outside
this machine blocked: pages load without console errors, MathJax renders equations
from the book's own files, launch links point at the chapter notebooks, internal links
resolve, figures are present, search finds things. ``make book`` must have run."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium found: install Debian's `chromium` package "
                "(`apt-get install chromium`) to run the browser tests")


def _pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"], *(e["file"] for part in toc["parts"] for e in part["chapters"])]
    return [f"{f}.html" for f in files]


CHAPTER_PAGES = [p for p in _pages() if p.startswith("chapters/")]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make book` (or `make book-strict`) first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


class Visit:
    """A page opened with outside requests blocked, recording errors and blocked URLs."""

    def __init__(self, browser, url: str) -> None:
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.route("**/*", self._only_local)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.goto(url, wait_until="load")

    def _only_local(self, route) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)

    def close(self) -> None:
        self.page.close()


@pytest.mark.parametrize("page", _pages())
def test_page_loads_offline_without_console_errors(browser, server: str, page: str) -> None:
    visit = Visit(browser, server + page)
    try:
        visit.page.wait_for_timeout(300)
        assert visit.errors == [], visit.errors
        assert visit.blocked == [], f"the page asked the network for {visit.blocked}"
        assert visit.page.locator("h1").count() >= 1
    finally:
        visit.close()


@pytest.mark.parametrize("page", [*CHAPTER_PAGES, "notation.html"])
def test_equations_are_rendered_by_local_mathjax(browser, server: str, page: str) -> None:
    visit = Visit(browser, server + page)
    try:
        visit.page.wait_for_selector("mjx-container", state="attached", timeout=20_000)
        rendered = visit.page.locator("mjx-container").count()
        assert rendered > 0
        assert visit.page.locator("mjx-merror").count() == 0
        sources = visit.page.eval_on_selector_all(
            "script[src*='mathjax']", "els => els.map(e => e.src)")
        assert sources and all(s.startswith(server) for s in sources), sources
    finally:
        visit.close()


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_launch_links_point_at_the_chapter_notebook(browser, server: str, page: str) -> None:
    notebook = page.removesuffix(".html") + ".ipynb"
    visit = Visit(browser, server + page)
    try:
        hrefs = visit.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        colab = [h for h in hrefs if "colab.research.google.com" in h]
        binder = [h for h in hrefs if "mybinder.org" in h]
        assert colab and all(h.endswith(f"/blob/main/{notebook}") for h in colab), colab
        assert binder and all("/main?" in h and notebook in h for h in binder), binder
        downloads = [h for h in hrefs if h.endswith(".ipynb") and "_sources" in h]
        assert downloads, "the download button offers the .ipynb"
    finally:
        visit.close()


@pytest.mark.parametrize("page", _pages())
def test_internal_links_resolve(browser, server: str, page: str) -> None:
    visit = Visit(browser, server + page)
    try:
        hrefs = visit.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        local = {h.split("#")[0] for h in hrefs if h.startswith(server)}
        for href in sorted(local):
            response = visit.page.request.get(href)
            assert response.ok, f"{page} links to {href}: HTTP {response.status}"
    finally:
        visit.close()


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_figures_are_present_and_decoded(browser, server: str, page: str) -> None:
    visit = Visit(browser, server + page)
    try:
        sizes = visit.page.eval_on_selector_all(
            "main img", "els => els.map(e => [e.src, e.complete && e.naturalWidth])")
        figures = [s for s in sizes if "_images" in s[0] or s[0].startswith("data:image")]
        assert figures, "a chapter has at least one figure"
        assert all(width for _, width in figures), [s for s in figures if not s[1]]
    finally:
        visit.close()


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
