"""What the browser tests share: the built book served on 127.0.0.1, headless Chromium,
and a page visit that blocks every request leaving this machine."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
#: The built book; BOOK_HTML points the tests at another build of it.
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


#: Browsers tried in turn: Debian's Chromium (this machine, CI), the Chromium of other
#: distributions, then Google Chrome, which GitHub's Ubuntu runners have preinstalled
#: (there `chromium-browser` is only a shim that asks for snap).
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> tuple[str, str]:
    """The first browser on PATH that really starts: ``(path, its --version line)``."""
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if not path:
            continue
        try:
            result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and result.stdout.strip():
            return path, result.stdout.strip()
    pytest.skip(f"no working browser among {', '.join(BROWSER_NAMES)}: install Debian's "
                "`chromium` package (`apt-get install chromium`) to run the browser tests")


def _pages() -> list[str]:
    """Every page of the table of contents, sections included, as ``.html`` paths."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def files(entries: list[dict]) -> list[str]:
        return [f for e in entries for f in (e["file"], *files(e.get("sections", [])))]

    return [f"{f}.html" for f in [toc["root"], *(f for part in toc["parts"]
                                                  for f in files(part["chapters"]))]]


CHAPTER_PAGES = [p for p in _pages() if p.startswith("chapters/")]
REFERENCE_PAGES = [p for p in _pages() if p.startswith("reference/")]


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

    executable, version = find_browser()
    print(f"\nbrowser tests run in {version} ({executable})")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


class Visit:
    """A page opened with outside requests blocked, recording errors and blocked URLs.

    ``init_script`` runs in the page before any of its own scripts; ``cpu_slowdown``
    slows the page's CPU down that many times (Chromium's throttling), as on a phone.
    """

    def __init__(self, browser, url: str, viewport: dict[str, int] | None = None,
                 init_script: str | None = None, cpu_slowdown: float = 1) -> None:
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self._cdp = None
        self.page = browser.new_page(viewport=viewport or {"width": 1280, "height": 900})
        if init_script:
            self.page.add_init_script(init_script)
        if cpu_slowdown != 1:
            self.set_cpu_slowdown(cpu_slowdown)
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

    def set_cpu_slowdown(self, rate: float) -> None:
        if self._cdp is None:
            self._cdp = self.page.context.new_cdp_session(self.page)
        self._cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate})

    def close(self) -> None:
        self.page.close()


#: Typeset every equation of the page, also those MathJax's lazy typesetting has left for
#: when they scroll into view.
TYPESET_ALL_JS = """async () => {
  const mj = window.MathJax;
  if (!mj || !mj.startup || !mj.startup.promise) return;
  await mj.startup.promise;
  const doc = mj.startup.document;
  if (doc && doc.lazyTypesetAll) await doc.lazyTypesetAll();
}"""
