"""Sphinx extension: API signatures that Sphinx can parse, so they read on a phone.

With ``autodoc_preserve_defaults`` a default is shown as written in the source
(``reduction="mean"``, ``dtype=torch.float32``). A few defaults are not Python that
Sphinx's signature parser takes: a tuple with a starred name (``(784, *DEFAULT_HIDDEN,
10)``), a dataclass field's ``<factory>``, the ``<function f at 0x...>`` repr of a
function default. Then Sphinx prints the whole parameter list as one raw string, with
``~collections.abc.Callable`` and no line breaks, and on a phone it runs off the
screen. This rewrites only those defaults: the value itself for a starred tuple, the
factory's call for a dataclass field (``list()``), the function's name for a function.
Every other default stays as written.

A signature broken one parameter per line (``python_maximum_signature_line_length``)
comes out as a ``<dl>`` of ``<dd>`` without a ``<dt>``, which is not a valid definition
list for assistive technology; the page writes those lines as ``<div>`` elements instead.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from typing import Any

from sphinx.application import Sphinx


def _split_top_level(text: str) -> list[str]:
    """Split a parameter list at the commas that are not inside brackets or strings."""
    parts, depth, current, quote = [], 0, [], ""
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def _parses(default: str) -> bool:
    try:
        tree = ast.parse(default.strip(), mode="eval")
    except SyntaxError:
        return False
    return not any(isinstance(node, ast.Starred) for node in ast.walk(tree))


def _readable(name: str, obj: Any) -> str | None:
    """A Python expression for the default of parameter ``name`` of ``obj``, or None."""
    if dataclasses.is_dataclass(obj):
        for field in dataclasses.fields(obj):
            if field.name == name and field.default_factory is not dataclasses.MISSING:
                factory = field.default_factory
                if getattr(factory, "__name__", "<lambda>") != "<lambda>":
                    return f"{factory.__name__}()"
                text = repr(factory())
                return text if _parses(text) else None
    try:
        parameter = inspect.signature(obj).parameters[name]
    except (TypeError, ValueError, KeyError):
        return None
    value = parameter.default
    if value is inspect.Parameter.empty:
        return None
    if type(value).__name__ == "DefaultValue":  # autodoc_preserve_defaults' source text
        try:
            value = eval(value.name, dict(getattr(obj, "__globals__", {})))
        except Exception:
            return None
    if callable(value) and hasattr(value, "__qualname__"):
        return value.__qualname__
    text = repr(value)
    return text if _parses(text) else None


def readable_signature(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                       signature: str | None, return_annotation: str | None
                       ) -> tuple[str, str | None] | None:
    if not signature or not signature.startswith("(") or not signature.endswith(")"):
        return None
    parts = _split_top_level(signature[1:-1])
    changed = False
    for i, part in enumerate(parts):
        if "=" not in part:
            continue
        head, default = part.split("=", 1)
        if _parses(default):
            continue
        parameter = head.split(":", 1)[0].strip().lstrip("*")
        readable = _readable(parameter, obj)
        if readable is not None:
            parts[i] = f"{head}= {readable}" if head.endswith(" ") else f"{head}={readable}"
            changed = True
    if not changed:
        return None
    return "(" + ",".join(parts) + ")", return_annotation


_SIGNATURE = re.compile(r'(<dt class="sig[^"]*"[^>]*>)(.*?)(</dt>)', re.S)


def _parameter_lines(match: re.Match[str]) -> str:
    inner = (match.group(2).replace("<dl>", '<div class="sig-params">')
             .replace("</dl>", "</div>").replace("<dd>", '<div class="sig-param-line">')
             .replace("</dd>", "</div>"))
    return match.group(1) + inner + match.group(3)


def signature_lines_as_divs(app: Sphinx, pagename: str, templatename: str,
                            context: dict[str, Any], doctree: object) -> None:
    body = context.get("body")
    if isinstance(body, str) and '<dt class="sig' in body:
        context["body"] = _SIGNATURE.sub(_parameter_lines, body)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-signature", readable_signature)
    app.connect("html-page-context", signature_lines_as_divs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
