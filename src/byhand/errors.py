"""Exceptions that are both the precise Python type and the type PyTorch raises.

PyTorch reports most bad arguments of its losses as a :class:`RuntimeError` ("expected
scalar type Float but found Double"), and an unsupported dtype as a
:class:`NotImplementedError`. ``byhand`` raises the more precise :class:`TypeError` or
:class:`ValueError`, and makes each one a subclass of PyTorch's type too, so code
written around ``F.cross_entropy`` (``except RuntimeError:``) catches ours as well.
"""

from __future__ import annotations

__all__ = ["ArgumentTypeError", "ArgumentValueError", "UnsupportedDTypeError"]


class ArgumentTypeError(TypeError, RuntimeError):
    """An argument of the wrong dtype, where PyTorch raises a ``RuntimeError``."""


class ArgumentValueError(ValueError, RuntimeError):
    """An argument of the wrong shape or value, where PyTorch raises a ``RuntimeError``."""


class UnsupportedDTypeError(TypeError, NotImplementedError):
    """A dtype the operation has no kernel for, where PyTorch raises ``NotImplementedError``."""
