"""Sphinx extension: emit each inline ``<script>`` only once per page.

sphinx-thebe registers its configuration script (``const THEBE_JS_URL = ...``) after
the HTML builder has read its script list, and Sphinx 7.4 then emits it twice; the
second copy throws "Identifier 'THEBE_JS_URL' has already been declared" in every
browser console. Dropping exact duplicates from the page context fixes that.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str,
                            context: dict[str, Any], doctree: object) -> None:
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {})
        # An inline script's filename is None or "" depending on how it was added.
        key = (str(getattr(script, "filename", script) or ""), repr(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
