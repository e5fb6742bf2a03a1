"""Names that moved to another module, kept where they were for one release, with a warning.

A module whose public names moved gives itself a module-level ``__getattr__`` (PEP 562)
built by :func:`moved`: reaching an old name returns the object from its new home and
warns with a :class:`DeprecationWarning` that says where it lives now.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved"]


def moved(module: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``module`` whose names in ``homes`` now live in ``homes[name]``.

    Examples:
        >>> import warnings
        >>> getattr_ = moved("old", {"sqrt": "math"})
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     getattr_("sqrt")(9.0), str(caught[0].message)
        (3.0, 'old.sqrt is deprecated; use math.sqrt')
    """

    def get_moved(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(f"{module}.{name} is deprecated; use {homes[name]}.{name}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(homes[name]), name)

    return get_moved
