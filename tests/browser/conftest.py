"""The browser fixtures (the served book and headless Chromium), shared by every module here."""

from book_browser import browser, server

__all__ = ["browser", "server"]
