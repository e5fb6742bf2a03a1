"""Print the built HTML book (``_build/html``) to one PDF: the PDF edition.

Every page of the table of contents is opened in headless Chromium from a server on
127.0.0.1 (requests leaving this machine are blocked), its mathematics typeset, its
solutions opened, its hidden cells and interface text (buttons, "Show code cell
source", "Click to hide") removed, and its article gathered into one document behind a
title page and a table of contents. Chromium prints that document with the book's print
stylesheet (``@media print`` in ``_static/book.css``): code and output lines wrap instead
of running off the margin, each chapter starts a page, and every page is numbered. A
first printing finds the page each chapter starts on; the second prints the contents
with those page numbers. Links between chapters become links inside the PDF. Nothing
may be wider than the printed column, or Chromium would shrink every page to fit it:
the tool then stops and names what is too wide.

    python tools/print_book.py [--html _build/html] [--out _build/html/backprop-by-hand.pdf]

Needs the HTML book (``make book``), Chromium (or Google Chrome) and ``pdftotext`` /
``pdfinfo`` (Debian's ``poppler-utils``). It executes nothing: the chapters' outputs are
the ones the HTML build produced.
"""

from __future__ import annotations

import argparse
import functools
import html
import http.server
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[1]
PDF_NAME = "backprop-by-hand.pdf"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update"]
BOOK_URL = "__pdf_edition__.html"
#: The printed column: A4's 210 mm less the two 17 mm margins, in CSS pixels (96 per inch).
COLUMN_PX = round((210 - 2 * 17) / 25.4 * 96)

# The first element of each part that reaches past the printed column (the document laid
# out for print at the column's width), outside any box that scrolls or clips on its own;
# inline elements wrap, so only their padding can pass the edge, and that moves nothing.
_TOO_WIDE_JS = r"""
(column) => {
  const clipped = el => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  const found = [];
  for (const part of document.querySelectorAll('section.pdf-page')) {
    const left = part.getBoundingClientRect().left;
    for (const el of part.querySelectorAll('*')) {
      const box = el.getBoundingClientRect();
      if (box.width === 0 || box.right - left <= column + 1 || clipped(el)) continue;
      if (getComputedStyle(el).display === 'inline') continue;  // wraps; its padding may not
      const named = el.closest('[id]');
      found.push({part: part.id, px: Math.round(box.right - left),
                  what: el.tagName.toLowerCase() + (named ? ' in #' + named.id : '')});
      break;
    }
  }
  return found;
}
"""

# Run in each page: typeset all of its mathematics, then reduce its article to what a
# printed page shows, with ids and links made unique to the page.
_PREPARE_JS = r"""
async ({slug, pages, siteUrl}) => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    const doc = MathJax.startup.document;
    if (doc && doc.lazyTypesetAll) await doc.lazyTypesetAll();
  }
  const article = document.querySelector('article.bd-article');
  // Cells hidden on the page (plumbing) stay out of the print; solutions are shown.
  article.querySelectorAll('details.hide, .tag_remove-input .cell_input, .print-hidden')
    .forEach(el => el.remove());
  article.querySelectorAll('.toggle-hidden').forEach(el => el.classList.remove('toggle-hidden'));
  article.querySelectorAll('details').forEach(d => { d.open = true; });
  article.querySelectorAll('button, .headerlink, .toggle-details__summary, .copybtn, '
    + 'script, .onlyprint, mjx-assistive-mml').forEach(el => el.remove());
  article.querySelectorAll('img').forEach(img => {
    img.setAttribute('src', img.src);
    img.removeAttribute('loading');
  });
  const here = location.href.split('#')[0];
  const local = url => new URL(url).origin === location.origin;
  article.querySelectorAll('[id]').forEach(el => { el.id = `${slug}--${el.id}`; });
  article.querySelectorAll('a[href]').forEach(a => {
    const url = new URL(a.getAttribute('href'), here);
    if (!local(url.href)) return;
    const path = url.pathname.replace(/^\//, '');
    const fragment = decodeURIComponent(url.hash.replace(/^#/, ''));
    if (pages[path] !== undefined) {
      const target = pages[path];
      a.setAttribute('href', fragment ? `#${target}--${fragment}` : `#${target}`);
    } else {
      a.setAttribute('href', siteUrl + path + url.hash);
    }
  });
  // MathJax writes its CHTML styles through the CSSOM: read the rules, not the text.
  const styles = Array.from(document.styleSheets)
    .filter(s => s.ownerNode && s.ownerNode.tagName === 'STYLE')
    .map(s => { try { return Array.from(s.cssRules).map(r => r.cssText).join('\n'); }
                catch (e) { return ''; } })
    .filter(text => /mjx-/.test(text));
  const sheets = Array.from(document.querySelectorAll('link[rel=stylesheet]')).map(l => l.href);
  return {html: article.innerHTML, styles, sheets, title: document.title};
}
"""


def toc_pages(root: Path = ROOT) -> list[tuple[str | None, str]]:
    """``(part caption, page.html)`` for every page of the table of contents, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())

    def files(entries: list[dict]) -> list[str]:
        return [f for e in entries for f in (e["file"], *files(e.get("sections", [])))]

    result: list[tuple[str | None, str]] = [(None, f"{toc['root']}.html")]
    for part in toc["parts"]:
        result += [(part.get("caption"), f"{f}.html") for f in files(part["chapters"])]
    return result


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    sys.exit(f"print_book: no browser among {', '.join(BROWSERS)}; install Debian's chromium")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A browser that closes while a file is on its way (when the tool stops early) is
        no error of the server's; anything else is reported as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(directory))
    httpd = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()


def _slug(page: str) -> str:
    return "page-" + re.sub(r"[^a-z0-9]+", "-", page.removesuffix(".html").lower()).strip("-")


def _title(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("#", "").strip()


def book_document(config: dict, parts: list[tuple[str | None, str, str, str]], styles: list[str],
                  sheets: list[str], page_numbers: dict[str, int] | None) -> str:
    """The whole book as one HTML document: title page, contents, then every page."""
    title = html.escape(config.get("title", "Book"))
    author = html.escape(config.get("author", ""))
    contents, caption = [], object()
    for part, slug, heading, _ in parts:
        if part != caption and part:
            contents.append(f'<li class="pdf-contents-part">{html.escape(part)}</li>')
        caption = part
        number = "" if page_numbers is None else str(page_numbers.get(slug, ""))
        contents.append(f'<li><a href="#{slug}"><span class="pdf-contents-title">'
                        f'{html.escape(heading)}</span><span class="pdf-contents-page">'
                        f'{number}</span></a></li>')
    body = "\n".join(f'<section class="pdf-page" id="{slug}">{inner}</section>'
                     for _, slug, _, inner in parts)
    links = "\n".join(f'<link rel="stylesheet" href="{html.escape(s)}">' for s in sheets)
    math = "\n".join(f"<style>{s}</style>" for s in styles)
    return f"""<!DOCTYPE html>
<html lang="en" data-theme="light" data-mode="light"><head><meta charset="utf-8">
<title>{title}</title>
{links}
{math}
</head>
<body class="pdf-edition"><main id="main-content" class="bd-main"><div class="bd-content">
<div class="bd-article-container"><article class="bd-article">
<section class="pdf-title-page">
  <p class="pdf-book-title">{title}</p>
  <p class="pdf-book-subtitle">The backward of cross-entropy, derived by hand and checked
  against PyTorch, from index notation to an MNIST classifier and beyond</p>
  <p class="pdf-book-author">{author}</p>
  <p class="pdf-book-date">PDF edition, printed from the HTML book on {time.strftime('%Y-%m-%d')}</p>
</section>
<nav class="pdf-contents" aria-label="Contents"><h1>Contents</h1><ol>{''.join(contents)}</ol></nav>
{body}
</article></div></div></main></body></html>"""


def gather(page, server: str, site_url: str) -> tuple[list, list[str], list[str]]:
    """Open every page once and return its printable article, the MathJax styles, the sheets."""
    pages = toc_pages()
    slugs = {p: _slug(p) for _, p in pages}
    parts, styles, sheets = [], [], []
    for part, name in pages:
        page.goto(server + name, wait_until="load")
        got = page.evaluate(_PREPARE_JS, {"slug": slugs[name], "pages": slugs, "siteUrl": site_url})
        heading = _title(page.locator("article.bd-article h1").first.inner_text())
        parts.append((part, slugs[name], heading, got["html"]))
        styles += [s for s in got["styles"] if s not in styles]
        sheets += [s for s in got["sheets"] if s not in sheets]
    return parts, styles, sheets


def too_wide(page) -> list[str]:
    """The parts of the laid-out document with an element wider than the printed column,
    each with its first such element: Chromium would shrink every page to fit it."""
    viewport = page.viewport_size
    page.set_viewport_size({"width": COLUMN_PX, "height": viewport["height"]})
    try:
        found = page.evaluate(_TOO_WIDE_JS, COLUMN_PX)
    finally:
        page.set_viewport_size(viewport)
    return [f"{f['part']}: {f['what']} ({f['px']} px)" for f in found]


def print_document(page, server: str, document: str, out: Path, *, check_width: bool) -> None:
    """Print ``document`` to ``out``; with ``check_width``, first stop if anything in it is
    wider than the printed column (:func:`too_wide`)."""

    def fulfil(route) -> None:
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=document)

    page.route(server + BOOK_URL, fulfil)
    page.emulate_media(media="print")  # lay the long document out once, for paper
    page.goto(server + BOOK_URL, wait_until="load")
    page.evaluate("document.fonts.ready.then(() => true)")
    wide = too_wide(page) if check_width else []
    if wide:
        raise SystemExit(f"print_book: wider than the {COLUMN_PX} px printed column, which "
                         "would shrink every page of the PDF to fit:\n  " + "\n  ".join(wide))
    footer = ('<div style="font-size:8px;width:100%;text-align:center;color:#555;'
              'font-family:sans-serif"><span class="pageNumber"></span></div>')
    page.pdf(path=str(out), format="A4", print_background=True, outline=True, tagged=True,
             display_header_footer=True, header_template="<div></div>", footer_template=footer,
             margin={"top": "18mm", "bottom": "18mm", "left": "17mm", "right": "17mm"})
    page.unroute(server + BOOK_URL)
    page.emulate_media(media="screen")


def page_texts(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    return [re.sub(r"\s+", " ", p) for p in text.split("\f")]


def chapter_pages(pdf: Path, parts: list) -> dict[str, int]:
    """The page (1-based) each part of the book starts on, found in the printed text."""
    texts = page_texts(pdf)
    # Past the title page and the contents (which ends with the last part's heading);
    # every part starts a page, its heading first.
    last = _title(parts[-1][2])
    at = next((i for i in range(1, len(texts)) if last in texts[i]), 1) + 1
    found = {}
    for _, slug, heading, _ in parts:
        want = _title(heading)
        i = at
        while i < len(texts) and not texts[i].lstrip().startswith(want):
            i += 1
        if i < len(texts):
            found[slug] = i + 1
            at = i
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--site-url", default=None,
                        help="where links to files outside the PDF point (the published book)")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").exists():
        sys.exit(f"print_book: no HTML book in {args.html}: run `make book` first")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = urlparse(config["repository"]["url"]).path.strip("/").split("/")
    site_url = args.site_url or f"https://{repo[0]}.github.io/{repo[1]}/"
    out = args.out or args.html / PDF_NAME

    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    with serve(args.html) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_browser(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 900, "height": 1200})
        page.route("**/*", lambda route: route.continue_()
                   if urlparse(route.request.url).hostname == "127.0.0.1" else route.abort())
        parts, styles, sheets = gather(page, server, site_url)
        gathered = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            draft = Path(tmp) / "draft.pdf"
            print_document(page, server, book_document(config, parts, styles, sheets, None), draft,
                           check_width=True)
            numbers = chapter_pages(draft, parts)
        # Only the contents' page numbers differ from the draft, which was checked.
        print_document(page, server, book_document(config, parts, styles, sheets, numbers), out,
                       check_width=False)
        browser.close()
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(
        ["pdfinfo", str(out)], check=True, capture_output=True, text=True).stdout).group(1))
    print(f"{out}: {pages} pages, {out.stat().st_size / 1e6:.1f} MB, {len(parts)} parts; "
          f"{gathered - started:.0f} s to gather the pages, "
          f"{time.perf_counter() - gathered:.0f} s to print twice")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
