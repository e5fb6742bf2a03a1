r"""Softmax, log-softmax and log-sum-exp, with their hand-written backward passes.

Everything here is a pure tensor function: no autograd is needed to run the
``*_backward`` functions, and each one takes ``grad_output`` first, then the
forward's inputs, exactly like the rest of :mod:`byhand`.

In index notation, along the dimension ``dim`` (index :math:`j`), with every other
index held fixed:

.. math::

   m = \max_k x_k, \qquad
   \operatorname{lse}(x) = m + \log \sum_k e^{x_k - m}, \qquad
   s_i = e^{x_i - \operatorname{lse}(x)}, \qquad
   \ell_i = x_i - \operatorname{lse}(x).

The max shift :math:`m` changes nothing mathematically (softmax is invariant to a
constant added to every logit) but keeps every exponent :math:`\le 0`, so nothing
overflows.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "logsumexp_backward",
    "softmax",
    "softmax_backward",
    "softmax_jacobian",
]


def _require_float(name: str, x: Tensor) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")


def logsumexp(input: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    r"""Stable :math:`\operatorname{lse}(x) = m + \log \sum_k e^{x_k - m}`, :math:`m = \max_k x_k`.

    A row whose maximum is infinite is returned as that maximum (``+inf``) or as
    ``-inf`` when every entry is ``-inf``, as :func:`torch.logsumexp` does.
    """
    _require_float("input", input)
    m = input.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    out = m + (input - m).exp().sum(dim=dim, keepdim=True).log()
    return out if keepdim else out.squeeze(dim)


def logsumexp_backward(
    grad_output: Tensor, input: Tensor, dim: int = -1, keepdim: bool = False
) -> Tensor:
    r""":math:`\partial\,\operatorname{lse}/\partial x_j = s_j`, so the input gradient is :math:`g\, s_j`."""
    g = grad_output if keepdim else grad_output.unsqueeze(dim)
    return g * softmax(input, dim=dim)


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    r""":math:`s_i = e^{x_i - m} / \sum_k e^{x_k - m}` along ``dim``."""
    _require_float("input", input)
    e = (input - input.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


def softmax_backward(grad_output: Tensor, input: Tensor, dim: int = -1) -> Tensor:
    r"""Vector-Jacobian product of softmax in :math:`O(n)`.

    With :math:`\partial s_i/\partial x_j = s_i(\delta_{ij} - s_j)`,

    .. math:: \frac{\partial L}{\partial x_j} = g_i s_i(\delta_{ij} - s_j)
              = s_j\,(g_j - g_k s_k),

    summing over the repeated indices :math:`i` and :math:`k`.
    """
    s = softmax(input, dim=dim)
    return s * (grad_output - (grad_output * s).sum(dim=dim, keepdim=True))


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    r""":math:`\ell_i = x_i - \operatorname{lse}(x) = (x_i - m) - \log\sum_k e^{x_k - m}` along ``dim``.

    The subtraction of :math:`m` comes first: :math:`x_i - m` is exact for the
    largest entries, whereas :math:`x_i - \operatorname{lse}(x)` would round
    :math:`\operatorname{lse}(x)` at the scale of :math:`|x|` before subtracting.
    """
    _require_float("input", input)
    m = input.amax(dim=dim, keepdim=True)
    z = input - torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return z - z.exp().sum(dim=dim, keepdim=True).log()


def log_softmax_backward(grad_output: Tensor, input: Tensor, dim: int = -1) -> Tensor:
    r"""Vector-Jacobian product of log-softmax.

    With :math:`\partial \ell_i/\partial x_j = \delta_{ij} - s_j`,

    .. math:: \frac{\partial L}{\partial x_j} = g_i(\delta_{ij} - s_j) = g_j - s_j\, g_i.
    """
    s = softmax(input, dim=dim)
    return grad_output - s * grad_output.sum(dim=dim, keepdim=True)


def softmax_jacobian(input: Tensor) -> Tensor:
    r"""The materialised Jacobian :math:`J_{ij} = s_i(\delta_{ij} - s_j) = \operatorname{diag}(s) - s s^\top`.

    ``input`` has shape ``(..., n)``; the result has shape ``(..., n, n)`` with
    ``J[..., i, j]`` the derivative of output ``i`` with respect to input ``j``.
    """
    s = softmax(input, dim=-1)
    return torch.diag_embed(s) - s.unsqueeze(-1) * s.unsqueeze(-2)
