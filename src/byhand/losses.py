r"""Negative log-likelihood and cross-entropy, forward and backward.

The functions mirror :mod:`torch.nn.functional`: the same names, arguments, defaults,
shapes and results. Every ``*_backward`` takes ``grad_output`` first, then the
forward's inputs, and returns the gradient with respect to ``input``.

Notation (the book's). ``input`` holds the logits :math:`x_{nj}`, with the class index
:math:`j` in dimension 1 (dimension 0 for an unbatched ``(C,)`` input); for inputs of shape
``(N, C, d1, ...)`` a sample :math:`n` is one position :math:`(n, d_1, \ldots)`. For
class-index targets :math:`y_n`, the ignore mask :math:`\mu_n` is 1 where
:math:`y_n \ne` ``ignore_index`` and 0 where it is equal, and :math:`w_j` are the class
weights (all 1 when ``weight`` is ``None``).

Cross-entropy with label smoothing :math:`\varepsilon` over :math:`C` classes is

.. math::

   \begin{aligned}
   \ell_{nj} &= x_{nj} - \log\textstyle\sum_k e^{x_{nk}}, \\
   L_n &= -\mu_n\Big[(1-\varepsilon)\, w_{y_n}\, \ell_{n y_n} \\
       &\qquad + \frac{\varepsilon}{C}\sum_j w_j\, \ell_{nj}\Big],
   \end{aligned}

reduced by ``sum``, by nothing (``none``), or by ``mean``, which divides by
:math:`D = \sum_n \mu_n w_{y_n}` (the summed target weights). With class-probability
targets :math:`t_{nj}`, :math:`L_n = -\sum_j w_j\, t'_{nj}\, \ell_{nj}` with
:math:`t'_{nj} = (1-\varepsilon)\,t_{nj} + \varepsilon/C`, and ``mean`` divides by the
number of positions :math:`M`, not by the weights.

Write :math:`\tilde t_{nj}` for the effective target, the weighted, masked, smoothed row
with :math:`L_n = -\sum_j \tilde t_{nj}\,\ell_{nj}`, and :math:`g_n` for the gradient
reaching :math:`L_n`: :math:`G/D` for ``mean``, :math:`G` for ``sum`` (with :math:`G`
the upstream gradient ``grad_output`` at the reduced loss), the given vector for
``none``. Then the whole backward is

.. math::

   \frac{\partial L}{\partial x_{nj}} = g_n\Big(s_{nj} \sum_k \tilde t_{nk} - \tilde t_{nj}\Big),

which for one-hot targets without weights and ``mean`` is the familiar
:math:`(s_{nj} - \delta_{j y_n})/N`.

Dtypes. The loss has the input's dtype, except with class-probability targets, where
it has the promoted dtype of input, target and weight (a float64 target with a float32
input gives a float64 loss), as in PyTorch; class weights for class-index targets must
have the input's dtype. For ``float16`` and ``bfloat16`` the softmax, the per-sample
losses and the gradient are computed in ``float32`` and rounded once to the input's
dtype; the reductions and the ``mean`` denominator are rounded as PyTorch rounds them.

Nothing waits for the device. Target values are checked (a clear ``IndexError``) only
on the CPU, where reading them is free. On another device reading them would stop the
device until it catches up, so the check is skipped there: an out-of-range index is
then caught by the device's own bounds check in ``gather`` and ``scatter`` (a
device-side assert on CUDA, as in PyTorch's own kernel). Whether a position is ignored
is a mask computed on the device, never a branch on the host, and counts divide as
Python numbers, so no number is copied to the device either. On ``meta`` tensors every
function therefore runs as PyTorch's does, propagating shapes only.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .cross_entropy_checks import (
    require_scalar_reduction,
    validate,
    validate_call,
)
from .cross_entropy_core import (
    CrossEntropyOptions,
    Reduction,
    batched,
    denominator,
    input_gradient,
    loss_dtype,
    per_sample_loss,
    position_count,
    positions_like,
    reduce,
    softmax_parts,
    target_indices,
    target_weight,
    total,
    unbatched,
    upstream,
)
from .deprecation import moved
from .softmax import log_softmax, opmath_dtype, softmax

__all__ = [
    "Reduction",
    "cross_entropy",
    "cross_entropy_backward",
    "cross_entropy_forward_backward",
    "cross_entropy_target_backward",
    "nll_loss",
    "nll_loss_backward",
]


# ------------------------------------------------------------------------------- NLL


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Negative log-likelihood of log-probabilities: :math:`L_n = -\mu_n w_{y_n} x_{n y_n}`.

    ``input`` holds log-probabilities of shape ``(C,)``, ``(N, C)`` or
    ``(N, C, d1, ...)``; ``target`` class indices of shape ``()``, ``(N,)`` or
    ``(N, d1, ...)``. ``mean`` divides by :math:`D = \sum_n \mu_n w_{y_n}`. Only the target
    entry of each row enters the loss; the other entries are never read.

    Examples:
        >>> logp = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), dim=1)
        >>> nll_loss(logp, torch.tensor([0, 1]))
        tensor(0.3185)
        >>> nll_loss(logp, torch.tensor([0, -100])) == -logp[0, 0]
        tensor(True)
        >>> nll_loss(logp, torch.tensor([0, 3]))
        Traceback (most recent call last):
            ...
        IndexError: nll_loss: target values must be class indices in [0, 2] or ignore_index=-100; got 3
    """
    options = CrossEntropyOptions(weight, ignore_index, 0.0, reduction)
    validate("nll_loss", input, target, options, probabilities=False)
    x, t = batched(input, target)
    y, keep = target_indices(t, ignore_index)
    wy = target_weight(y, keep, weight, x.dtype)
    per = -wy * x.gather(1, y.unsqueeze(1)).squeeze(1)
    per = torch.where(keep, per, torch.zeros_like(per))
    if reduction == "none":
        return unbatched(per, input.dim() == 1)
    return reduce(per, reduction, total(wy))


def nll_loss_backward(
    grad_output: Tensor,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> Tensor:
    r""":math:`\partial L/\partial x_{nj} = -g_n \mu_n w_{y_n} \delta_{j y_n}`: only the target entry moves.

    For ``mean`` without weights that is :math:`-1/N` at the target and 0 elsewhere.

    Examples:
        >>> logp = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), dim=1)
        >>> nll_loss_backward(torch.tensor(1.0), logp, torch.tensor([0, 1]))
        tensor([[-0.5000,  0.0000,  0.0000],
                [ 0.0000, -0.5000,  0.0000]])
        >>> nll_loss_backward(torch.tensor(1.0), logp, torch.tensor([0, 1]), reduction="sum")
        tensor([[-1.,  0.,  0.],
                [ 0., -1.,  0.]])
    """
    options = CrossEntropyOptions(weight, ignore_index, 0.0, reduction)
    validate("nll_loss", input, target, options, probabilities=False)
    x, t = batched(input, target)
    y, keep = target_indices(t, ignore_index)
    wy = target_weight(y, keep, weight, x.dtype)
    g = grad_output.unsqueeze(0) if (reduction == "none" and input.dim() == 1) else grad_output
    coef = torch.where(keep, upstream(g.to(x.dtype), reduction, total(wy), wy) * wy, 0.0)
    grad = torch.zeros_like(x).scatter(1, y.unsqueeze(1), -coef.unsqueeze(1))
    return unbatched(grad, input.dim() == 1)


# ----------------------------------------------------------------------- cross-entropy


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy of logits, exactly as :func:`torch.nn.functional.cross_entropy`.

    ``input`` holds raw scores (logits), never probabilities: the log-softmax
    :math:`\ell_{nj}` is taken inside. ``target`` holds class indices (shape of
    ``input`` without the class dimension) or class probabilities (shape of
    ``input``). See the module docstring for :math:`L_n`, the reductions and dtypes.

    Examples:
        >>> x, y = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), torch.tensor([0, 1])
        >>> cross_entropy(x, y)
        tensor(0.3185)
        >>> torch.allclose(cross_entropy(x, y), torch.nn.functional.cross_entropy(x, y))
        True
        >>> cross_entropy(x, y, reduction="none", label_smoothing=0.1)
        tensor([0.5137, 0.3600])
    """
    options = CrossEntropyOptions(weight, ignore_index, label_smoothing, reduction)
    _, every_kept = validate_call("cross_entropy", input, target, options)
    x, t = batched(input, target)
    work = _working(x)
    if every_kept and options.plain and x.numel():
        # No position ignored (the values were read in validation): no mask to form.
        per = _kept_parts(work, t.long().unsqueeze(1))[2].to(x.dtype)
        if reduction == "none":
            return unbatched(per.squeeze(1), input.dim() == 1)
        return _kept_total(per, reduction, x)
    shift, _, sums = softmax_parts(work)
    per = per_sample_loss(work, shift, sums.log(), t, options).to(loss_dtype(x, t, weight))
    if reduction == "none":
        return unbatched(per, input.dim() == 1)
    return reduce(per, reduction, denominator(x, t, options))


def _working(x: Tensor) -> Tensor:
    """``x`` in the precision the computation runs in (:func:`byhand.softmax.opmath_dtype`)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.to(opmath_dtype(x.dtype))


def _kept_parts(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Exponentials, their row sums and the losses when no position is ignored (class dim kept).

    With the shift :math:`m_n = \max_k x_{nk}` and :math:`z_{nj} = x_{nj} - m_n`, return
    :math:`e_{nj} = e^{z_{nj}}` (in a new buffer), :math:`\sum_k e_{nk}` and
    :math:`L_n = \log\sum_k e_{nk} - z_{n y_n}`, which is :math:`-\ell_{n y_n}` as
    PyTorch's log-softmax computes it.
    """
    z = x - x.amax(1, keepdim=True)
    picked = z.gather(1, y)
    e = z.exp_()
    sums = e.sum(1, keepdim=True)
    return e, sums, sums.log().sub_(picked)


def _kept_total(per: Tensor, reduction: str, x: Tensor) -> Tensor:
    r""":math:`\sum_n L_n`, divided by the :math:`N` positions for ``mean`` (none ignored).

    ``per`` is in the loss's dtype, which sets how :math:`N` rounds
    (:func:`byhand.cross_entropy_core.position_count`).
    """
    if reduction == "sum":
        return total(per)
    if per.dtype in (torch.float32, torch.float64):
        return per.mean()  # the sum divided by N, in one operator
    return total(per).div(position_count(x, per.dtype))


def cross_entropy_backward(
    grad_output: Tensor,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Gradient of :func:`cross_entropy` with respect to ``input``.

    .. math:: \frac{\partial L}{\partial x_{nj}} = g_n\Big(s_{nj}\sum_k \tilde t_{nk} - \tilde t_{nj}\Big)

    with :math:`s_{nj}` the softmax along the class dimension, :math:`\tilde t_{nj}` the
    effective (weighted, masked, smoothed) target and :math:`g_n` the gradient reaching
    :math:`L_n` (:math:`G/D` for ``mean``, where :math:`G` is ``grad_output``).
    Only one tensor of the input's size is allocated: the result (for float16 and
    bfloat16, a float32 buffer and the rounded result).

    Examples:
        >>> x = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
        >>> y = torch.tensor([0, 1])
        >>> torch.nn.functional.cross_entropy(x, y).backward()
        >>> grad = cross_entropy_backward(torch.tensor(1.0), x.detach(), y)
        >>> grad
        tensor([[-0.1705,  0.1212,  0.0493],
                [ 0.0543, -0.0988,  0.0445]])
        >>> torch.allclose(grad, x.grad)
        True
    """
    options = CrossEntropyOptions(weight, ignore_index, label_smoothing, reduction)
    _, every_kept = validate_call("cross_entropy", input, target, options)
    x, t = batched(input, target)
    g = grad_output.to(x.dtype)
    if reduction == "none" and input.dim() == 1:
        g = g.unsqueeze(0)
    work = _working(x)
    recorded = torch.is_grad_enabled() and (x.requires_grad or g.requires_grad)
    if every_kept and options.plain and x.numel() and not recorded:
        # No position ignored: g_n (s_nj - δ_{j y_n}), the softmax by PyTorch's fused kernel.
        a = (g / position_count(x, x.dtype) if reduction == "mean" else g).to(work.dtype)
        a = a.unsqueeze(1) if reduction == "none" else a
        y = t.long().unsqueeze(1)
        grad = _softmax_in_place(work) * a  # a new tensor: batched when g is (torch.func.vmap)
        grad = grad.scatter_add_(1, y, a.neg().expand(y.shape))
        return unbatched(grad.to(x.dtype), input.dim() == 1)
    g = upstream(g, reduction, denominator(x, t, options), positions_like(x))
    g = g.to(work.dtype).contiguous()
    # Recorded (double backward): every step differentiable. Otherwise the softmax is
    # normalised in its own new buffer, and the product with g, which may be batched
    # under torch.func.vmap where s is not, is the one new tensor written.
    s = softmax(work, 1) if recorded else _softmax_in_place(work)
    grad = input_gradient(s, g, t, options, overwrite=False)
    return unbatched(grad.to(x.dtype), input.dim() == 1)


def _softmax_in_place(x: Tensor) -> Tensor:
    """Softmax along dimension 1 computed in a single new buffer."""
    _, e, sums = softmax_parts(x)
    return e.div_(sums)


def cross_entropy_forward_backward(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum"] = "mean",
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor]:
    r"""The loss and its input gradient (for ``grad_output = 1``) from one softmax pass.

    The exponentials are computed once, into the buffer that becomes the gradient:
    :math:`\log\sum_k e^{x_{nk}}` is read off their row sums before they are
    normalised in place. This is what a training loop wants, since the gradient of a
    scalar loss is needed right after the loss itself. Nothing in it waits for the
    device (see the module docstring).

    Examples:
        >>> x, y = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), torch.tensor([0, 1])
        >>> loss, grad = cross_entropy_forward_backward(x, y, label_smoothing=0.1)
        >>> torch.allclose(loss, cross_entropy(x, y, label_smoothing=0.1))
        True
        >>> torch.allclose(grad, cross_entropy_backward(torch.tensor(1.0), x, y, label_smoothing=0.1))
        True
    """
    require_scalar_reduction("cross_entropy_forward_backward", reduction)
    options = CrossEntropyOptions(weight, ignore_index, label_smoothing, reduction)
    _, every_kept = validate_call("cross_entropy", input, target, options)
    x, t = batched(input, target)
    work = _working(x)
    if every_kept and options.plain and x.numel():
        loss, grad = _kept_forward_backward(work, t, reduction, x.dtype)
        return loss, unbatched(grad, input.dim() == 1)
    shift, e, sums = softmax_parts(work)
    if options.plain and not t.is_floating_point():
        loss, grad = _plain_forward_backward(work, (shift, e, sums), t, options, x.dtype)
        return loss, unbatched(grad, input.dim() == 1)
    per = per_sample_loss(work, shift, sums.log(), t, options)
    d = denominator(x, t, options)
    loss = reduce(per.to(loss_dtype(x, t, weight)), reduction, d)
    one = torch.ones((), dtype=x.dtype, device=x.device)
    g = upstream(one, reduction, d, positions_like(x)).to(work.dtype).contiguous()
    grad = input_gradient(e.div_(sums), g, t, options, overwrite=True)
    return loss, unbatched(grad.to(x.dtype), input.dim() == 1)


def _kept_forward_backward(x: Tensor, target: Tensor, reduction: str,
                           dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    r"""The plain case with no position ignored (known from validation): no mask is formed.

    The exponentials :math:`e_{nk}` of :func:`_kept_parts`, divided in place by
    :math:`\sum_k e_{nk}/a`, become :math:`a\,s_{nj}`, and :math:`-a` is added at each
    target: :math:`a(s_{nj} - \delta_{j y_n})` with :math:`a = 1/N` (``mean``) or 1.
    """
    y = target.long().unsqueeze(1)
    e, sums, per = _kept_parts(x, y)
    loss = _kept_total(per.to(dtype), reduction, x)
    positions = position_count(x, dtype)
    a = 1.0 / positions if reduction == "mean" else 1.0
    grad = e.div_(sums.mul_(positions) if reduction == "mean" else sums)
    return loss, grad.scatter_(1, y, -a, reduce="add").to(dtype)


def _plain_forward_backward(
    x: Tensor, parts: tuple[Tensor, Tensor, Tensor], target: Tensor,
    options: CrossEntropyOptions, dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    r"""The plain case (class indices, no weights, no smoothing) with every mask formed once.

    With the shift :math:`m_n = \max_k x_{nk}` and :math:`e_{nk} = e^{x_{nk} - m_n}`
    (``parts`` holds :math:`m_n`, :math:`e_{nk}` and :math:`\sum_k e_{nk}`),
    :math:`L_n = \mu_n(m_n + \log\sum_k e_{nk} - x_{n y_n})` and
    :math:`\partial L/\partial x_{nj} = a_n(s_{nj} - \delta_{j y_n})`, where
    :math:`a_n = \mu_n/D` for ``mean`` (:math:`D = \sum_n \mu_n`) and :math:`a_n = \mu_n`
    for ``sum``. The exponentials become the gradient in place. ``x`` is in the
    working precision, ``dtype`` is the input's.
    """
    shift, e, sums = parts
    y, keep = target_indices(target, options.ignore_index)
    m = keep.to(dtype)
    count = total(m)
    per = torch.where(keep, (shift + sums.log() - x.gather(1, y.unsqueeze(1))).squeeze(1), 0)
    loss = reduce(per.to(dtype), options.reduction, count)
    # where, not m / D: with every position ignored, D = 0 and the gradient is 0, not 0/0.
    a = (torch.where(keep, count.reciprocal(), 0) if options.reduction == "mean" else m)
    a = a.to(x.dtype).unsqueeze(1)
    grad = e.div_(sums).mul_(a).scatter_add_(1, y.unsqueeze(1), -a)
    return loss, grad.to(dtype)


def cross_entropy_target_backward(
    grad_output: Tensor,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor | None]:
    r"""Gradients of :func:`cross_entropy` with respect to a probability ``target`` and ``weight``.

    With :math:`L_n = -\sum_j w_j t'_{nj}\ell_{nj}` and
    :math:`t'_{nj} = (1-\varepsilon)t_{nj} + \varepsilon/C`,

    .. math::

       \begin{aligned}
       \frac{\partial L}{\partial t_{nj}} &= -g_n(1-\varepsilon)\,w_j\,\ell_{nj}, \\
       \frac{\partial L}{\partial w_j} &= -\sum_n g_n\,t'_{nj}\,\ell_{nj}.
       \end{aligned}

    Returns ``(grad_target, grad_weight)`` (``grad_weight`` is None without ``weight``),
    each in its argument's dtype. Class-index targets have no gradient: a ``ValueError``.

    Examples:
        >>> x, t = torch.tensor([[2.0, 1.0, 0.1]]), torch.tensor([[0.7, 0.2, 0.1]])
        >>> tt = t.clone().requires_grad_()
        >>> torch.nn.functional.cross_entropy(x, tt).backward()
        >>> grad_t, _ = cross_entropy_target_backward(torch.tensor(1.0), x, t)
        >>> torch.allclose(grad_t, tt.grad)
        True
    """
    options = CrossEntropyOptions(weight, ignore_index, label_smoothing, reduction)
    if not validate("cross_entropy", input, target, options):
        raise ValueError("cross_entropy_target_backward: class-index targets have no gradient; "
                         f"got target dtype {target.dtype}")
    x, t = batched(input, target)
    dtype = loss_dtype(x, t, weight)
    logp = log_softmax(x.to(opmath_dtype(dtype)), 1)
    g = grad_output.unsqueeze(0) if (reduction == "none" and input.dim() == 1) else grad_output
    g = upstream(g.to(logp.dtype), reduction, denominator(x, t, options), positions_like(x))
    g_logp = g.unsqueeze(1) * logp
    view = (1, -1) + (1,) * (x.dim() - 2)
    eps = label_smoothing
    w = 1.0 if weight is None else weight.to(logp.dtype).view(view)
    grad_t = unbatched((-(1 - eps) * w * g_logp).to(target.dtype), input.dim() == 1)
    if weight is None:
        return grad_t, None
    t_prime = t.to(logp.dtype) * (1 - eps) + (eps / x.shape[1] if x.shape[1] else 0.0)
    dims = [d for d in range(x.dim()) if d != 1]
    grad_w = -(t_prime * g_logp).sum(dims) if dims else -(t_prime * g_logp)
    return grad_t, grad_w.to(weight.dtype)


# -------------------------------------------------------- 0.1.0 names, deprecated

#: Mean squared error moved to :mod:`byhand.mse`: deprecated aliases for one release.
__getattr__ = moved("byhand.losses", {"mse_loss": "byhand.mse", "mse_loss_backward": "byhand.mse",
                                      "legacy_reduction": "byhand.reduction"})
