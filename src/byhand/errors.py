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
    """An argument of the wrong dtype, where PyTorch raises a ``RuntimeError``.

    Examples:
        >>> import torch; from byhand.losses import cross_entropy
        >>> weight = torch.ones(3, dtype=torch.float64)
        >>> cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=weight)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.errors.ArgumentTypeError: cross_entropy: weight must have the input's dtype torch.float32; ...
        >>> issubclass(ArgumentTypeError, TypeError), issubclass(ArgumentTypeError, RuntimeError)
        (True, True)
    """


class ArgumentValueError(ValueError, RuntimeError):
    """An argument of the wrong shape or value, where PyTorch raises a ``RuntimeError``.

    Examples:
        >>> import torch; from byhand.losses import cross_entropy
        >>> cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.ones(4))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.errors.ArgumentValueError: cross_entropy: weight must have shape (3,), ...; got shape (4,)
        >>> issubclass(ArgumentValueError, ValueError), issubclass(ArgumentValueError, RuntimeError)
        (True, True)
    """


class UnsupportedDTypeError(TypeError, NotImplementedError):
    """A dtype the operation has no kernel for, where PyTorch raises ``NotImplementedError``.

    Examples:
        >>> import torch; from byhand.softmax import softmax
        >>> softmax(torch.tensor([1, 2, 3]), dim=0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.errors.UnsupportedDTypeError: softmax: input must be a floating-point tensor; ... torch.int64
        >>> issubclass(UnsupportedDTypeError, NotImplementedError)
        True
    """
