r"""Negative log-likelihood, cross-entropy and mean squared error, forward and backward.

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
   L_n &= -\mu_n\Big[(1-\varepsilon)\, w_{y_n}\, \ell_{n y_n}
          + \frac{\varepsilon}{C}\sum_j w_j\, \ell_{nj}\Big],
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

from .errors import ArgumentTypeError, ArgumentValueError, UnsupportedDTypeError
from .softmax import _softmax, opmath_dtype

__all__ = [
    "Reduction",
    "cross_entropy",
    "cross_entropy_backward",
    "cross_entropy_forward_backward",
    "mse_loss",
    "mse_loss_backward",
    "nll_loss",
    "nll_loss_backward",
]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")
_INDEX_DTYPES = (torch.int64, torch.uint8)


# ----------------------------------------------------------------------------- checks


def _check_reduction(fn: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{fn}: reduction must be one of 'mean', 'sum' or 'none'; got {reduction!r}"
        )


def _check_input(fn: str, input: Tensor) -> None:
    if input.dim() == 0:
        raise ArgumentValueError(
            f"{fn}: input must have a class dimension, shape (C,) or (N, C, d1, ...); "
            "got a 0-dimensional tensor"
        )
    if not input.is_floating_point():
        raise UnsupportedDTypeError(
            f"{fn}: input must be a floating-point tensor; got dtype {input.dtype}"
        )


def _check_weight(fn: str, weight: Tensor | None, input: Tensor, prob: bool) -> None:
    """Shape ``(C,)``; with class-index targets, also the input's dtype (PyTorch promotes none)."""
    if weight is None:
        return
    n_classes = _n_classes(input)
    if weight.dim() != 1 or weight.numel() != n_classes:
        raise ArgumentValueError(
            f"{fn}: weight must have shape ({n_classes},), one entry per class; "
            f"got shape {tuple(weight.shape)}"
        )
    if not prob and weight.dtype != input.dtype:
        raise ArgumentTypeError(
            f"{fn}: weight must have the input's dtype {input.dtype}; "
            f"got weight dtype {weight.dtype}"
        )


def _readable(target: Tensor) -> bool:
    """Whether reading ``target``'s values on the host is free: a plain CPU tensor.

    Not on another device (the read would wait for it), nor on ``meta`` (no values),
    nor inside a ``torch.func`` transform (no single value per sample to branch on).
    """
    return target.device.type == "cpu" and not torch._C._functorch.is_functorch_wrapped_tensor(
        target
    )


def _check_index_target(fn: str, input: Tensor, target: Tensor, ignore_index: int) -> None:
    """Validate class-index targets: dtype, shape and, where reading is free, the values."""
    if target.dtype not in _INDEX_DTYPES:
        raise ArgumentTypeError(
            f"{fn}: target must hold class indices of dtype torch.int64 (or torch.uint8), "
            f"or class probabilities with the input's shape {tuple(input.shape)}; "
            f"got dtype {target.dtype} and shape {tuple(target.shape)}"
        )
    if target.dtype == torch.uint8 and input.dim() > 2:
        raise ArgumentTypeError(
            f"{fn}: with extra dimensions d1, ... (input shape {tuple(input.shape)}) target "
            f"must have dtype torch.int64, as in PyTorch, which takes torch.uint8 only for "
            f"(C,) and (N, C) inputs; got dtype {target.dtype}"
        )
    if input.dim() == 1:
        if target.dim() != 0:
            raise ValueError(
                f"{fn}: an unbatched input of shape {tuple(input.shape)} needs a 0-dimensional "
                f"target; got target shape {tuple(target.shape)}"
            )
    elif target.dim() == 0 or target.shape[0] != input.shape[0]:
        got = "a 0-dimensional target" if target.dim() == 0 else f"{target.shape[0]}"
        raise ValueError(
            f"{fn}: target batch size must match input batch size {input.shape[0]}; got {got}"
        )
    elif target.shape[1:] != input.shape[2:]:
        expected = (input.shape[0], *input.shape[2:])
        raise ArgumentValueError(
            f"{fn}: target shape must be {expected} for input shape {tuple(input.shape)}; "
            f"got {tuple(target.shape)}"
        )
    if target.numel() and _readable(target):
        _check_index_values(fn, target.long(), _n_classes(input), ignore_index)


def _check_index_values(fn: str, target: Tensor, n_classes: int, ignore_index: int) -> None:
    """Every int64 ``target`` value is a class in ``[0, C)`` or ``ignore_index`` (CPU only)."""
    lo, hi = (int(v) for v in torch.stack(torch.aminmax(target)).tolist())
    if lo >= 0 and hi < n_classes:
        return
    bad = ((target < 0) | (target >= n_classes)) & (target != ignore_index)
    if bool(bad.any()):
        value = int(target[bad].flatten()[0])
        classes = f"in [0, {n_classes - 1}]" if n_classes else "(there are none: C = 0)"
        raise IndexError(
            f"{fn}: target values must be class indices {classes} "
            f"or ignore_index={ignore_index}; got {value}"
        )


def _check_prob_target(fn: str, target: Tensor, ignore_index: int) -> None:
    if not target.is_floating_point():
        raise ArgumentTypeError(
            f"{fn}: a target with the input's shape holds class probabilities and must be "
            f"floating point; got dtype {target.dtype}"
        )
    if ignore_index >= 0:
        raise ArgumentValueError(
            f"{fn}: ignore_index is not supported with class-probability targets; "
            f"got ignore_index={ignore_index}"
        )


def _check_label_smoothing(fn: str, label_smoothing: float) -> None:
    if not 0.0 <= label_smoothing <= 1.0:
        raise ArgumentValueError(
            f"{fn}: label_smoothing must be in [0.0, 1.0]; got {label_smoothing}"
        )


def _is_prob_target(input: Tensor, target: Tensor) -> bool:
    return input.shape == target.shape


def _check_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
    reduction: str, label_smoothing: float, fn: str = "cross_entropy",
) -> bool:
    """Validate the arguments of :func:`cross_entropy` (errors prefixed by ``fn``); return
    whether the targets are probabilities."""
    _check_reduction(fn, reduction)
    _check_input(fn, input)
    _check_label_smoothing(fn, label_smoothing)
    prob = _is_prob_target(input, target)
    _check_weight(fn, weight, input, prob)
    if prob:
        _check_prob_target(fn, target, ignore_index)
    else:
        _check_index_target(fn, input, target, ignore_index)
    return prob


def _check_nll(
    input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: str
) -> None:
    fn = "nll_loss"
    _check_reduction(fn, reduction)
    _check_input(fn, input)
    _check_weight(fn, weight, input, prob=False)
    _check_index_target(fn, input, target, ignore_index)


# ------------------------------------------------------------------ shared machinery


def _n_classes(input: Tensor) -> int:
    return input.shape[0] if input.dim() == 1 else input.shape[1]


def _batched(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """View an unbatched ``(C,)`` problem as a batch of one; the class dim is then 1."""
    if input.dim() == 1:
        return input.unsqueeze(0), target.unsqueeze(0)
    return input, target


def _class_view(weight: Tensor, input: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Reshape ``weight`` (C,) to broadcast along dimension 1 of ``input`` (in ``dtype``)."""
    return weight.to(dtype or input.dtype).view((1, -1) + (1,) * (input.dim() - 2))


def _target_indices(target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    r"""Return ``(y, keep)``: indices safe to gather (ignored ones set to 0) and the mask :math:`\mu_n`.

    The comparison is made in int64: a ``uint8`` target 156 is a class, not the
    default ``ignore_index`` -100 (which ``uint8`` arithmetic would wrap to 156).
    """
    target = target.long()
    keep = target != ignore_index
    return torch.where(keep, target, 0), keep


def _target_weight(
    y: Tensor, keep: Tensor, weight: Tensor | None, dtype: torch.dtype
) -> Tensor:
    r""":math:`\mu_n w_{y_n}` for every sample position :math:`n` (:math:`\mu_n` without weights)."""
    m = keep.to(dtype)
    return m if weight is None else m * weight.to(dtype)[y]


def _total(t: Tensor) -> Tensor:
    """Sum every entry in at least float32, then round to ``t``'s dtype.

    This is how PyTorch reduces float16 and bfloat16 losses: summed naively in half
    precision, the result would depend on how the work is split between threads.
    """
    return t.sum(dtype=torch.promote_types(t.dtype, torch.float32)).to(t.dtype)


def _reduce(per_sample: Tensor, reduction: str, denominator: Tensor | float) -> Tensor:
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return _total(per_sample)
    return _total(per_sample) / denominator


def _upstream(
    grad_output: Tensor, reduction: str, denominator: Tensor | float, like: Tensor
) -> Tensor:
    r""":math:`g_n`, the gradient reaching each per-sample loss :math:`L_n`, one per position.

    From the upstream gradient :math:`G` at the reduced loss, :math:`g_n = G/D` for
    ``mean`` and :math:`g_n = G` for ``sum``; for ``none`` the given :math:`g_n`.
    """
    if reduction == "mean":
        grad_output = grad_output / denominator
    return grad_output.expand_as(like)


def _positions_like(x: Tensor) -> Tensor:
    """A stand-in of shape ``(N, d1, ...)``, the sample positions of ``x``; it holds one number."""
    return x.new_empty(()).expand(x.shape[0], *x.shape[2:])


def _unbatch(result: Tensor, unbatched: bool) -> Tensor:
    return result.squeeze(0) if unbatched else result


def _writes_in_place(x: Tensor, g: Tensor) -> bool:
    """Whether a backward may overwrite its own buffers.

    Not when autograd records it (double backward: ``create_graph``), and not inside a
    ``torch.func`` transform, where a buffer without a batch dimension cannot receive
    a batched result.
    """
    recorded = torch.is_grad_enabled() and (x.requires_grad or g.requires_grad)
    return not recorded and not torch._C._are_functorch_transforms_active()


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
    _check_nll(input, target, weight, ignore_index, reduction)
    x, t = _batched(input, target)
    y, keep = _target_indices(t, ignore_index)
    wy = _target_weight(y, keep, weight, x.dtype)
    per = -wy * x.gather(1, y.unsqueeze(1)).squeeze(1)
    per = torch.where(keep, per, torch.zeros_like(per))
    if reduction == "none":
        return _unbatch(per, input.dim() == 1)
    return _reduce(per, reduction, _total(wy))


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
    _check_nll(input, target, weight, ignore_index, reduction)
    x, t = _batched(input, target)
    y, keep = _target_indices(t, ignore_index)
    wy = _target_weight(y, keep, weight, x.dtype)
    g = grad_output.unsqueeze(0) if (reduction == "none" and input.dim() == 1) else grad_output
    coef = torch.where(keep, _upstream(g.to(x.dtype), reduction, _total(wy), wy) * wy, 0.0)
    grad = torch.zeros_like(x).scatter(1, y.unsqueeze(1), -coef.unsqueeze(1))
    return _unbatch(grad, input.dim() == 1)


# ----------------------------------------------------------------------- cross-entropy


def _softmax_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Return :math:`m_n = \max_k x_{nk}`, :math:`e_{nj} = e^{x_{nj} - m_n}` and :math:`\sum_k e_{nk}`.

    With no classes (:math:`C = 0`) there is no maximum; the shift is then 0 and the
    sums are 0, so :math:`\log\sum_k e^{x_{nk}} = -\infty`, as in PyTorch.
    """
    shift = x.amax(1, keepdim=True) if x.shape[1] else x.sum(1, keepdim=True)
    e = (x - shift).exp_()
    return shift, e, e.sum(1, keepdim=True)


def _softmax_inplace(x: Tensor) -> Tensor:
    """Softmax along dimension 1 computed in a single new buffer."""
    _, e, sums = _softmax_parts(x)
    return e.div_(sums)


def _result_dtype(input: Tensor, target: Tensor, weight: Tensor | None, prob: bool) -> torch.dtype:
    """The loss's dtype: the input's, promoted with the target's and weight's for probabilities."""
    if not prob:
        return input.dtype
    dtype = torch.promote_types(input.dtype, target.dtype)
    return dtype if weight is None else torch.promote_types(dtype, weight.dtype)


def _per_class(label_smoothing: float, n_classes: int) -> float:
    r""":math:`\varepsilon/C`, the smoothing mass each class receives (0 when there are no classes)."""
    return label_smoothing / n_classes if n_classes else 0.0


def _prob_weights(target: Tensor, weight: Tensor | None, label_smoothing: float,
                  like: Tensor, n_classes: int | None = None) -> Tensor:
    r"""The effective probability target :math:`\tilde t_{nj} = w_j\, t'_{nj}`.

    Here :math:`t'_{nj} = (1-\varepsilon)\,t_{nj} + \varepsilon/C`: the target mixed with the uniform
    distribution over the :math:`C` classes. It is computed in the promoted dtype of
    ``like``, target and weight, as PyTorch's type promotion would. ``n_classes`` is
    :math:`C` when ``target`` holds only a block of the classes (default: ``like.shape[1]``).
    """
    n_classes = like.shape[1] if n_classes is None else n_classes
    dtype = _result_dtype(like, target, weight, prob=True)
    t = target.to(dtype)
    if label_smoothing > 0:
        t = t * (1 - label_smoothing) + _per_class(label_smoothing, n_classes)
    return t if weight is None else t * _class_view(weight, like, dtype)


def _prob_positions(x: Tensor) -> int:
    """The number of sample positions :math:`N d_1 \\cdots`, the ``mean`` denominator for probabilities.

    It is 0 when the input is empty, even with :math:`C = 0` classes, so that the
    ``mean`` of nothing is :math:`0/0 = \\mathrm{nan}`, as in PyTorch.
    """
    return x.numel() // x.shape[1] if x.numel() else 0


def _ce_per_sample(
    x: Tensor, shift: Tensor, log_sums: Tensor, target: Tensor, weight: Tensor | None,
    ignore_index: int, label_smoothing: float, prob: bool,
) -> Tensor:
    r"""Per-position losses :math:`L_n` (batched), in ``x``'s dtype (promoted for probabilities).

    Uses :math:`\ell_{nj} = (x_{nj} - m_n) - \log\sum_k e^{x_{nk} - m_n}`; for class-index
    targets without smoothing only the target column of :math:`\ell` is ever formed.
    """
    n_classes = x.shape[1]
    eps = label_smoothing
    if prob:
        q = _prob_weights(target, weight, eps, x)
        return -(q * (x - shift - log_sums)).sum(1)
    w = None if weight is None else _class_view(weight, x)
    y, keep = _target_indices(target, ignore_index)
    wy = _target_weight(y, keep, weight, x.dtype)
    x_y = x.gather(1, y.unsqueeze(1)) - shift
    per = (wy * (log_sums - x_y).squeeze(1))
    if eps > 0:
        logp = x - shift - log_sums
        smooth = -(logp if w is None else logp * w).sum(1)
        per = (1 - eps) * per + _per_class(eps, n_classes) * smooth
    return torch.where(keep, per, torch.zeros_like(per))


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
    prob = _check_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)
    x, t = _batched(input, target)
    work = x.to(opmath_dtype(x.dtype))
    shift, _, sums = _softmax_parts(work)
    per = _ce_per_sample(work, shift, sums.log(), t, weight, ignore_index, label_smoothing, prob)
    per = per.to(_result_dtype(input, target, weight, prob))
    if reduction == "none":
        return _unbatch(per, input.dim() == 1)
    return _reduce(per, reduction, _ce_denominator(x, t, weight, ignore_index, prob))


def _ce_grad_from_softmax(
    s: Tensor, g: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
    label_smoothing: float, prob: bool, inplace: bool,
) -> Tensor:
    r"""Turn the softmax ``s`` into :math:`g_n(s_{nj}\sum_k \tilde t_{nk} - \tilde t_{nj})`.

    For class indices the effective target is
    :math:`\tilde t_{nj} = \mu_n\big[(1-\varepsilon)\,w_{y_n}\delta_{j y_n} + (\varepsilon/C)\,w_j\big]`,
    so :math:`\sum_k \tilde t_{nk} = \mu_n\big[(1-\varepsilon)\,w_{y_n} + \varepsilon\bar w\big]`
    with :math:`\bar w` the mean class weight; for probabilities it is :math:`w_j t'_{nj}`.

    With ``inplace`` the result overwrites ``s``, so no other tensor of the input's
    size is allocated; without it every step is an ordinary differentiable operation.
    """
    mul, sub, scatter_add = (
        (Tensor.mul_, Tensor.sub_, Tensor.scatter_add_) if inplace
        else (Tensor.mul, Tensor.sub, Tensor.scatter_add)
    )
    n_classes = s.shape[1]
    eps = label_smoothing
    if prob:
        q = _prob_weights(target, weight, eps, s)
        return mul(sub(mul(s, q.sum(1, keepdim=True)), q), g.unsqueeze(1))
    w = None if weight is None else _class_view(weight, s)
    y, keep = _target_indices(target, ignore_index)
    wy = _target_weight(y, keep, weight, s.dtype)
    a = torch.where(keep, g, torch.zeros_like(g))
    w_mean = 1.0 if weight is None else weight.to(s.dtype).sum() / n_classes
    total = (1 - eps) * wy + eps * w_mean * keep.to(s.dtype)
    s = mul(s, (a * total).unsqueeze(1))
    if eps > 0:
        s = sub(s, _per_class(eps, n_classes) * a.unsqueeze(1) * (1.0 if w is None else w))
    return scatter_add(s, 1, y.unsqueeze(1), (-(1 - eps) * a * wy).unsqueeze(1))


def _plain_grad_from_softmax(
    s: Tensor, g: Tensor, target: Tensor, ignore_index: int, inplace: bool
) -> Tensor:
    r"""The plain case on the softmax :math:`s`: :math:`\mu_n g_n(s_{nj} - \delta_{j y_n})`.

    No weights and no smoothing, so :math:`\tilde t_{nj} = \mu_n\delta_{j y_n}` and
    :math:`\sum_k \tilde t_{nk} = \mu_n`; ``g`` holds :math:`g_n`, one per position.
    """
    y, keep = _target_indices(target, ignore_index)
    a = torch.where(keep, g, 0).unsqueeze(1)
    if inplace:
        return s.mul_(a).scatter_add_(1, y.unsqueeze(1), -a)
    return (s * a).scatter_add(1, y.unsqueeze(1), -a)


def _ce_denominator(
    input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, prob: bool
) -> Tensor | float:
    if prob:
        return _prob_positions(input)
    y, keep = _target_indices(target, ignore_index)
    return _total(_target_weight(y, keep, weight, input.dtype))


def _ce_grad(
    s: Tensor, g: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
    label_smoothing: float, prob: bool, inplace: bool,
) -> Tensor:
    """The input gradient from the softmax ``s`` (the plain case by its shortcut)."""
    if not prob and weight is None and label_smoothing == 0:
        return _plain_grad_from_softmax(s, g, target, ignore_index, inplace)
    return _ce_grad_from_softmax(s, g, target, weight, ignore_index, label_smoothing, prob,
                                 inplace)


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
    prob = _check_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)
    x, t = _batched(input, target)
    g = grad_output.to(x.dtype)
    if reduction == "none" and input.dim() == 1:
        g = g.unsqueeze(0)
    inplace = _writes_in_place(x, g)
    denominator = _ce_denominator(x, t, weight, ignore_index, prob)
    work = x.to(opmath_dtype(x.dtype))
    g = _upstream(g, reduction, denominator, _positions_like(x)).to(work.dtype).contiguous()
    s = _softmax_inplace(work) if inplace else _softmax(work, 1)
    grad = _ce_grad(s, g, t, weight, ignore_index, label_smoothing, prob, inplace)
    return _unbatch(grad.to(x.dtype), input.dim() == 1)


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
    _require_scalar_reduction(reduction)
    prob = _check_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)
    x, t = _batched(input, target)
    work = x.to(opmath_dtype(x.dtype))
    shift, e, sums = _softmax_parts(work)
    if not prob and weight is None and label_smoothing == 0:
        loss, grad = _plain_forward_backward(x.dtype, work, shift, e, sums, t, ignore_index,
                                             reduction)
        return loss, _unbatch(grad, input.dim() == 1)
    per = _ce_per_sample(work, shift, sums.log(), t, weight, ignore_index, label_smoothing, prob)
    denominator = _ce_denominator(x, t, weight, ignore_index, prob)
    loss = _reduce(per.to(_result_dtype(input, target, weight, prob)), reduction, denominator)
    one = torch.ones((), dtype=x.dtype, device=x.device)
    g = _upstream(one, reduction, denominator, _positions_like(x)).to(work.dtype).contiguous()
    grad = _ce_grad(e.div_(sums), g, t, weight, ignore_index, label_smoothing, prob, True)
    return loss, _unbatch(grad.to(x.dtype), input.dim() == 1)


def _require_scalar_reduction(reduction: str) -> None:
    """Refuse ``'none'``, which the ``Literal`` type already excludes, for untyped callers."""
    if reduction == "none":
        raise ValueError(
            "cross_entropy_forward_backward: reduction must be 'mean' or 'sum' "
            "(a scalar loss); got 'none'"
        )


def _plain_forward_backward(
    dtype: torch.dtype, x: Tensor, shift: Tensor, e: Tensor, sums: Tensor, target: Tensor,
    ignore_index: int, reduction: str,
) -> tuple[Tensor, Tensor]:
    r"""The plain case (class indices, no weights, no smoothing) with every mask formed once.

    With the shift :math:`m_n = \max_k x_{nk}` and :math:`e_{nk} = e^{x_{nk} - m_n}`,
    :math:`L_n = \mu_n(m_n + \log\sum_k e_{nk} - x_{n y_n})` and
    :math:`\partial L/\partial x_{nj} = a_n(s_{nj} - \delta_{j y_n})`, where
    :math:`a_n = \mu_n/D` for ``mean`` (:math:`D = \sum_n \mu_n`) and :math:`a_n = \mu_n`
    for ``sum``. The exponentials ``e`` become the gradient in place. ``x`` is in the
    working precision, ``dtype`` is the input's.
    """
    y, keep = _target_indices(target, ignore_index)
    m = keep.to(dtype)
    count = _total(m)
    per = torch.where(keep, (shift + sums.log() - x.gather(1, y.unsqueeze(1))).squeeze(1), 0)
    loss = _reduce(per.to(dtype), reduction, count)
    # where, not m / D: with every position ignored, D = 0 and the gradient is 0, not 0/0.
    a = (torch.where(keep, count.reciprocal(), 0) if reduction == "mean" else m)
    a = a.to(x.dtype).unsqueeze(1)
    grad = e.div_(sums).mul_(a).scatter_add_(1, y.unsqueeze(1), -a)
    return loss, grad.to(dtype)


# -------------------------------------------------------------------------------- MSE


def mse_loss(input: Tensor, target: Tensor, reduction: Reduction = "mean") -> Tensor:
    r""":math:`L = \frac{1}{K}\sum_k (x_k - t_k)^2` over all :math:`K` elements (``mean``).

    The loss has the promoted dtype of input and target, as in PyTorch; the ``mean``
    of no elements is :math:`0/0 = \mathrm{nan}`.

    Examples:
        >>> mse_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
        tensor(2.5000)
    """
    _check_mse(input, target, reduction)
    per = (input - target) ** 2
    return _reduce(per, reduction, per.numel())


def mse_loss_backward(
    grad_output: Tensor, input: Tensor, target: Tensor, reduction: Reduction = "mean"
) -> Tensor:
    r""":math:`\partial L/\partial x_k = 2 g_k (x_k - t_k)`, divided by :math:`K` for ``mean``.

    The gradient has the input's dtype, whatever the target's (as autograd gives it);
    an empty input has an empty gradient.

    Examples:
        >>> mse_loss_backward(torch.tensor(1.0), torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
        tensor([1., 2.])
    """
    _check_mse(input, target, reduction)
    count = input.numel()
    scale = 2.0 / count if reduction == "mean" and count else 2.0
    grad = scale * grad_output * (input - target)
    return grad.to(input.dtype) if input.is_floating_point() else grad


def _check_mse(input: Tensor, target: Tensor, reduction: str) -> None:
    _check_reduction("mse_loss", reduction)
    if input.shape != target.shape:
        raise ValueError(
            f"mse_loss: target shape must equal input shape {tuple(input.shape)}; "
            f"got {tuple(target.shape)}"
        )
    if not torch.promote_types(input.dtype, target.dtype).is_floating_point:
        raise UnsupportedDTypeError(
            "mse_loss: input or target must be a floating-point tensor; "
            f"got dtypes {input.dtype} and {target.dtype}"
        )
