r"""Softmax, log-softmax and log-sum-exp, with their hand-written backward passes.

Everything here is a pure tensor function: no autograd is needed to run the
``*_backward`` functions, and each one takes ``grad_output`` first, then the
forward's inputs, exactly like the rest of :mod:`byhand`.

In index notation, along the dimension ``dim`` (index :math:`j`), with every other
index held fixed:

.. math::

   \begin{aligned}
   m &= \max_k x_k, \\
   \mathrm{lse}(x) &= m + \log \sum_k e^{x_k - m}, \\
   s_i &= e^{x_i - \mathrm{lse}(x)}, \\
   \ell_i &= x_i - \mathrm{lse}(x).
   \end{aligned}

The max shift :math:`m` changes nothing mathematically (softmax is invariant to a
constant added to every logit) but keeps every exponent :math:`\le 0`, so nothing
overflows.

Half precision. For ``float16`` and ``bfloat16`` inputs every function computes in
``float32`` and rounds its result to the input's dtype once at the end, as PyTorch's
kernels do ("opmath"): the exponentials, their sums and logarithms never round to
11 (or 8) significant bits along the way.

Empty inputs. Over a dimension of size 0, :func:`softmax` and :func:`log_softmax`
return an empty tensor and :func:`logsumexp` returns :math:`\log 0 = -\infty`, as
PyTorch does; nothing reads a value, so every function also runs on ``meta`` tensors.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from .errors import ArgumentValueError, UnsupportedDTypeError

__all__ = [
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "logsumexp_backward",
    "logsumexp_update",
    "online_logsumexp",
    "opmath_dtype",
    "softmax",
    "softmax_backward",
    "softmax_jacobian",
]

Dims = int | Sequence[int]


def opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a computation on ``dtype`` runs in: ``float32`` for the half types, else ``dtype``.

    Examples:
        >>> opmath_dtype(torch.bfloat16), opmath_dtype(torch.float64)
        (torch.float32, torch.float64)
    """
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _require_float(fn: str, x: Tensor) -> None:
    if not x.is_floating_point():
        raise UnsupportedDTypeError(
            f"{fn}: input must be a floating-point tensor; got dtype {x.dtype}"
        )


def _require_int_dim(fn: str, dim: object) -> None:
    if isinstance(dim, bool) or not hasattr(dim, "__index__"):
        raise TypeError(f"{fn}: dim must be an int; got {dim!r}")


def _require_tensor(fn: str, input: object) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor; got {type(input).__name__}")


def _softmax_dim(fn: str, input: Tensor, dim: object, stacklevel: int) -> int:
    """``dim`` as an ``int`` (NumPy integers too); ``None`` takes PyTorch's legacy choice, with its warning.

    The legacy choice is dimension 0 for 0-, 1- and 3-dimensional inputs and 1 otherwise.
    """
    if dim is None:
        warnings.warn(f"Implicit dimension choice for {fn} has been deprecated. "
                      "Change the call to include dim=X as an argument.", stacklevel=stacklevel)
        return 0 if input.dim() in (0, 1, 3) else 1
    _require_int_dim(fn, dim)
    return operator.index(dim)  # type: ignore[arg-type]


def _cast(input: Tensor, dtype: torch.dtype | None) -> Tensor:
    """``input`` in ``dtype`` first, as PyTorch's ``dtype=`` does (the gradient flows back through it)."""
    return input if dtype is None else input.to(dtype)


def _reduced_dims(fn: str, dim: Dims, ndim: int) -> tuple[int, ...]:
    """``dim`` as a sorted tuple of non-negative dimensions, checked as PyTorch checks it."""
    dims = (operator.index(dim),) if hasattr(dim, "__index__") else tuple(map(operator.index, dim))
    if not dims:
        raise ArgumentValueError(f"{fn}: dim must name at least one dimension; got {dim!r}")
    rank = max(ndim, 1)
    if any(not -rank <= d < rank for d in dims):
        raise IndexError(
            f"{fn}: dim must be in [{-rank}, {rank - 1}] for a {ndim}-dimensional input; "
            f"got {dim!r}"
        )
    positive = sorted(d % rank for d in dims)
    if len(set(positive)) != len(positive):
        raise ArgumentValueError(f"{fn}: dim names a dimension twice; got {dim!r}")
    return tuple(positive)


def _logsumexp_keepdim(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    r""":math:`\mathrm{lse}` over ``dims`` with the reduced dimensions kept (size 1).

    The shift :math:`m` is replaced by 0 where it is infinite, so a row of ``-inf``
    gives ``-inf`` and a row holding ``+inf`` gives ``+inf``, as in PyTorch.
    """
    if x.numel() == 0:
        return x.exp().sum(dim=dims, keepdim=True).log()
    m = x.amax(dim=dims, keepdim=True)
    m = m.masked_fill(m.isinf(), 0)
    return (x - m).exp().sum(dim=dims, keepdim=True).log().add(m)


def logsumexp(input: Tensor, dim: Dims = -1, keepdim: bool = False) -> Tensor:
    r"""Stable :math:`\mathrm{lse}(x) = m + \log \sum_k e^{x_k - m}`, :math:`m = \max_k x_k`.

    ``dim`` is one dimension or a tuple of them (the sum then runs over all of them).
    A row whose maximum is infinite is returned as that maximum (``+inf``) or as
    ``-inf`` when every entry is ``-inf``, as :func:`torch.logsumexp` does; an integer
    input is first converted to the default floating-point dtype, as there.

    Examples:
        >>> x = torch.tensor([[1000.0, 1000.0], [0.0, -1.0]])
        >>> logsumexp(x, dim=1)
        tensor([1.0007e+03, 3.1326e-01])
        >>> x.exp().sum(dim=1).log()
        tensor([   inf, 0.3133])
    """
    _require_tensor("logsumexp", input)
    if input.is_complex():
        return _complex_logsumexp(input, _reduced_dims("logsumexp", dim, input.dim()), keepdim)
    if not input.is_floating_point():
        input = input.to(torch.get_default_dtype())
    dims = _reduced_dims("logsumexp", dim, input.dim())
    out = _logsumexp_keepdim(input.to(opmath_dtype(input.dtype)), dims)
    return (out if keepdim else out.squeeze(dims)).to(input.dtype)


def _complex_logsumexp(x: Tensor, dims: tuple[int, ...], keepdim: bool) -> Tensor:
    r""":math:`\log\sum_k e^{z_k}` of complex :math:`z`, shifted by :math:`m = \max_k \operatorname{Re} z_k`.

    As PyTorch computes it: the shift (0 where infinite) bounds the moduli
    :math:`|e^{z_k - m}| \le 1`; it is a constant for the derivative, which is
    :math:`e^{z_j - \mathrm{lse}(z)}`.
    """
    if x.numel() == 0:
        out = x.exp().sum(dim=dims, keepdim=True).log()
    else:
        m = x.real.amax(dim=dims, keepdim=True).detach()
        m = m.masked_fill(m.isinf(), 0)
        out = (x - m).exp().sum(dim=dims, keepdim=True).log() + m
    return out if keepdim else out.squeeze(dims)


def logsumexp_backward(
    grad_output: Tensor, input: Tensor, dim: Dims = -1, keepdim: bool = False
) -> Tensor:
    r""":math:`\partial\,\mathrm{lse}/\partial x_j = s_j = e^{x_j - \mathrm{lse}(x)}`.

    The input gradient is :math:`g\, e^{x_j - \mathrm{lse}(x)}`, written with
    :math:`\mathrm{lse}` rather than the softmax so that an entry ``+inf`` gets
    ``nan`` and the finite entries of its row get 0, exactly PyTorch's formula.

    Examples:
        >>> x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        >>> torch.logsumexp(x, dim=0).backward()
        >>> grad = logsumexp_backward(torch.tensor(1.0), x.detach(), dim=0)
        >>> grad
        tensor([0.0900, 0.2447, 0.6652])
        >>> torch.allclose(grad, x.grad)
        True
    """
    _require_float("logsumexp_backward", input)
    dims = _reduced_dims("logsumexp_backward", dim, input.dim())
    x = input.to(opmath_dtype(input.dtype))
    g = grad_output.to(x.dtype)
    if not keepdim:
        for d in dims:
            g = g.unsqueeze(d)
    return (g * (x - _logsumexp_keepdim(x, dims)).exp()).to(input.dtype)


def _softmax(x: Tensor, dim: int) -> Tensor:
    """Softmax along ``dim`` in ``x``'s own dtype (the callers choose the precision)."""
    if x.numel() == 0:
        return x.exp()
    e = (x - x.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype: torch.dtype | None = None) -> Tensor:
    r""":math:`s_i = e^{x_i - m} / \sum_k e^{x_k - m}` along ``dim``.

    The arguments are :func:`torch.nn.functional.softmax`'s: ``dtype`` converts the
    input first; without ``dim``, PyTorch's legacy choice (0 for 0-, 1- and
    3-dimensional inputs, else 1) with its deprecation warning.

    Examples:
        >>> x = torch.tensor([1.0, 2.0, 3.0])
        >>> softmax(x, dim=0)
        tensor([0.0900, 0.2447, 0.6652])
        >>> softmax(x + 1000.0, dim=0)
        tensor([0.0900, 0.2447, 0.6652])
    """
    _require_tensor("softmax", input)
    axis = _softmax_dim("softmax", input, dim, _stacklevel)
    input = _cast(input, dtype)
    _require_float("softmax", input)
    return _softmax(input.to(opmath_dtype(input.dtype)), axis).to(input.dtype)


def softmax_backward(grad_output: Tensor, input: Tensor, dim: int = -1) -> Tensor:
    r"""Vector-Jacobian product of softmax in :math:`O(n)`.

    With :math:`\partial s_i/\partial x_j = s_i(\delta_{ij} - s_j)`,

    .. math::

       \begin{aligned}
       \frac{\partial L}{\partial x_j} &= \sum_i g_i s_i(\delta_{ij} - s_j) \\
       &= s_j\Big(g_j - \sum_k g_k s_k\Big).
       \end{aligned}

    Examples:
        >>> x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        >>> g = torch.tensor([1.0, 0.0, -1.0])
        >>> torch.softmax(x, dim=0).backward(g)
        >>> softmax_backward(g, x.detach())
        tensor([ 0.1418,  0.1408, -0.2826])
        >>> torch.allclose(softmax_backward(g, x.detach()), x.grad)
        True
    """
    _require_float("softmax_backward", input)
    _require_int_dim("softmax_backward", dim)
    x = input.to(opmath_dtype(input.dtype))
    s, g = _softmax(x, dim), grad_output.to(x.dtype)
    return (s * (g - (g * s).sum(dim=dim, keepdim=True))).to(input.dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
                dtype: torch.dtype | None = None) -> Tensor:
    r""":math:`\ell_i = x_i - \mathrm{lse}(x) = (x_i - m) - \log\sum_k e^{x_k - m}` along ``dim``.

    The arguments are :func:`torch.nn.functional.log_softmax`'s (see :func:`softmax`).

    The subtraction of :math:`m` comes first: :math:`x_i - m` is exact for the
    largest entries, whereas :math:`x_i - \mathrm{lse}(x)` would round
    :math:`\mathrm{lse}(x)` at the scale of :math:`|x|` before subtracting.
    A row holding ``+inf`` (or only ``-inf``) is ``nan`` throughout, as in PyTorch.

    Examples:
        >>> x = torch.tensor([1.0, 2.0, 3.0])
        >>> log_softmax(x, dim=0)
        tensor([-2.4076, -1.4076, -0.4076])
        >>> log_softmax(x, dim=0).exp().sum()
        tensor(1.)
    """
    _require_tensor("log_softmax", input)
    axis = _softmax_dim("log_softmax", input, dim, _stacklevel)
    input = _cast(input, dtype)
    _require_float("log_softmax", input)
    x = input.to(opmath_dtype(input.dtype))
    if x.numel() == 0:
        return input.clone()
    z = x - x.amax(dim=axis, keepdim=True)
    return (z - z.exp().sum(dim=axis, keepdim=True).log()).to(input.dtype)


def log_softmax_backward(grad_output: Tensor, input: Tensor, dim: int = -1) -> Tensor:
    r"""Vector-Jacobian product of log-softmax.

    With :math:`\partial \ell_i/\partial x_j = \delta_{ij} - s_j`,

    .. math::

       \begin{aligned}
       \frac{\partial L}{\partial x_j} &= \sum_i g_i(\delta_{ij} - s_j) \\
       &= g_j - s_j \sum_i g_i.
       \end{aligned}

    Examples:
        >>> x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        >>> g = torch.tensor([0.0, 0.0, -1.0])
        >>> torch.log_softmax(x, dim=0).backward(g)
        >>> log_softmax_backward(g, x.detach())
        tensor([ 0.0900,  0.2447, -0.3348])
        >>> torch.allclose(log_softmax_backward(g, x.detach()), x.grad)
        True
    """
    _require_float("log_softmax_backward", input)
    _require_int_dim("log_softmax_backward", dim)
    x = input.to(opmath_dtype(input.dtype))
    s, g = _softmax(x, dim), grad_output.to(x.dtype)
    return (g - s * g.sum(dim=dim, keepdim=True)).to(input.dtype)


def softmax_jacobian(input: Tensor) -> Tensor:
    r"""The materialised Jacobian :math:`J_{ij} = s_i(\delta_{ij} - s_j) = \operatorname{diag}(s) - s s^\top`.

    ``input`` has shape ``(..., n)``; the result has shape ``(..., n, n)`` with
    ``J[..., i, j]`` the derivative of output ``i`` with respect to input ``j``.

    Examples:
        >>> J = softmax_jacobian(torch.tensor([0.0, 0.0]))
        >>> J
        tensor([[ 0.2500, -0.2500],
                [-0.2500,  0.2500]])
        >>> J.shape, J.sum(dim=0)
        (torch.Size([2, 2]), tensor([0., 0.]))
    """
    s = softmax(input, dim=-1)
    return torch.diag_embed(s) - s.unsqueeze(-1) * s.unsqueeze(-2)


# ------------------------------------------------------------- online log-sum-exp


def logsumexp_update(m: Tensor, r: Tensor, block: Tensor) -> tuple[Tensor, Tensor]:
    r"""Fold one block of a row into a running log-sum-exp, kept as :math:`(m, r)`.

    The state means :math:`\mathrm{lse} = m + \log r` for the entries seen so
    far, with :math:`m` their maximum and :math:`r = \sum_k e^{x_k - m}`. For a new
    block :math:`B` along the last dimension,

    .. math::

       \begin{aligned}
       m' &= \max\big(m, \max_{k \in B} x_k\big), \\
       r' &= r\, e^{m - m'} + \sum_{k \in B} e^{x_k - m'} .
       \end{aligned}

    Start from :math:`m = -\infty`, :math:`r = 0` (shape ``block.shape[:-1] + (1,)``).
    Every exponent is :math:`\le 0`, so nothing overflows (Milakov & Gimelshein, 2018).

    Examples:
        >>> x = torch.tensor([[1000.0, 1001.0, 999.0, 1002.0]])
        >>> m, r = torch.tensor([[-math.inf]]), torch.zeros(1, 1)
        >>> m, r = logsumexp_update(m, r, x[:, :2])
        >>> m, r = logsumexp_update(m, r, x[:, 2:])
        >>> m + r.log(), torch.logsumexp(x, 1, keepdim=True)
        (tensor([[1002.4402]]), tensor([[1002.4402]]))
    """
    m_new = torch.maximum(m, block.amax(-1, keepdim=True))
    safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
    r_new = r * (m - safe).exp() + (block - safe).exp().sum(-1, keepdim=True)
    return m_new, r_new


def online_logsumexp(blocks: Iterable[Tensor]) -> Tensor:
    r""":math:`\log\sum_k e^{x_k}` along the last dimension, one block of columns at a time.

    Examples:
        >>> x = torch.tensor([[0.5, 2.0, -1.0, 3.0, 0.0]])
        >>> online_logsumexp([x[:, :2], x[:, 2:3], x[:, 3:]]), torch.logsumexp(x, 1)
        (tensor([3.4174]), tensor([3.4174]))
    """
    state: tuple[Tensor, Tensor] | None = None
    for block in blocks:
        if state is None:
            m = torch.full((*block.shape[:-1], 1), -math.inf, dtype=block.dtype,
                           device=block.device)
            state = (m, torch.zeros_like(m))
        state = logsumexp_update(*state, block)
    if state is None:
        raise ValueError("online_logsumexp: blocks must hold at least one block; got none")
    m, r = state
    return (m + r.log()).squeeze(-1)
