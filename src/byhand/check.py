r"""Check hand-derived gradients: compare them, estimate them numerically, check a whole backward.

The book's one import for checking, gathering three modules:

- :mod:`byhand.comparison`: :func:`compare` reports whether ``ours`` and ``reference``
  are bit-for-bit equal, agree to floating-point tolerance, and their largest absolute
  difference :math:`\max_k |a_k - b_k|`, in one line that fits a phone, verdict first;
  :func:`assert_close` raises when they do not agree (PyTorch's argument order);
  :func:`numerical_gradient` estimates
  :math:`\partial f/\partial x_k \approx (f(x + h e_k) - f(x - h e_k)) / 2h`.
- :mod:`byhand.backward_check`: :func:`check_backward` compares the gradients a
  hand-written backward returns with autograd's and with central differences.
- :mod:`byhand.gradient_hints`: the hints about the kind of bug in its report.

Examples:
    >>> import torch
    >>> print(assert_close(torch.tensor([0.5, 1.0]), torch.tensor([0.5, 1.0]), name="dW"))
    ✓ exact        max diff 0         dW
"""

from __future__ import annotations

from .backward_check import BackwardReport, GradientCheck, check_backward
from .comparison import Comparison, assert_close, autograd_gradient, compare, numerical_gradient

__all__ = [
    "BackwardReport",
    "Comparison",
    "GradientCheck",
    "assert_close",
    "autograd_gradient",
    "check_backward",
    "compare",
    "numerical_gradient",
]
