"""Every public function and class of the library modules shows an example that runs.

``make unit`` executes the examples (``pytest --doctest-modules src/byhand``); this test
makes sure none is missing, so that a new public name cannot arrive without one. The
constants and type aliases in ``__all__`` (``Reduction``, ``SYMBOLS``, ...) have no
docstring of their own to hold an example and are not checked.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

MODULES = ["byhand"] + [f"byhand.{name}" for name in (
    "softmax", "losses", "autograd", "check", "symbolic", "layers", "data", "device", "errors",
    "distributed", "linear_cross_entropy", "memory", "train", "mnist", "comparison",
    "backward_check", "gradient_hints", "symbolic_notation", "steps", "evaluation",
    "data.idx", "data.atomic", "data.mirrors", "data.datasets", "data.prepare",
    "launcher", "data_parallel", "preprocess")]


def _public(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    objects = [(name, getattr(module, name)) for name in module.__all__]
    return [(name, obj) for name, obj in objects if inspect.isfunction(obj) or inspect.isclass(obj)]


PUBLIC = [(module, name, obj) for module in MODULES for name, obj in _public(module)]


@pytest.mark.parametrize(("module", "name", "obj"), PUBLIC,
                         ids=[f"{module}.{name}" for module, name, _ in PUBLIC])
def test_public_docstring_has_an_example(module: str, name: str, obj: object) -> None:
    doc = inspect.getdoc(obj) or ""
    examples = doctest.DocTestParser().get_examples(doc)
    assert "Examples:" in doc and examples, (
        f"{module}.{name}: the docstring needs an 'Examples:' section with >>> lines"
    )
    assert any(example.want or example.exc_msg for example in examples), (
        f"{module}.{name}: the example must show a result, not only run"
    )


def test_package_docstring_has_an_example() -> None:
    import byhand

    assert doctest.DocTestParser().get_examples(byhand.__doc__ or "")
