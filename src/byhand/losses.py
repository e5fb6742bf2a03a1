r"""Negative log-likelihood, cross-entropy and mean squared error, forward and backward.

The functions mirror :mod:`torch.nn.functional`: the same names, arguments, defaults,
shapes and results. Every ``*_backward`` takes ``grad_output`` first, then the
forward's inputs, and returns the gradient with respect to ``input``.

Notation. ``input`` is :math:`x_{nc\ldots}` with the class index :math:`c` in
dimension 1 (dimension 0 for an unbatched ``(C,)`` input); :math:`i` below stands for
one sample position :math:`(n, d_1, \ldots)`. For class-index targets :math:`y_i`,
:math:`m_i = [y_i \ne \text{ignore\_index}]` masks ignored positions and
:math:`w_c` are the class weights (all 1 when ``weight`` is ``None``).

Cross-entropy with label smoothing :math:`\varepsilon` over :math:`C` classes is

.. math::

   \ell_{ic} = x_{ic} - \log\textstyle\sum_k e^{x_{ik}}, \qquad
   L_i = -m_i\Big[(1-\varepsilon)\, w_{y_i}\, \ell_{i y_i}
          + \frac{\varepsilon}{C}\sum_c w_c\, \ell_{ic}\Big],

reduced by ``sum``, by nothing (``none``), or by ``mean``, which divides by
:math:`D = \sum_i m_i w_{y_i}` (the summed target weights). With class-probability
targets :math:`t_{ic}`, :math:`L_i = -\sum_c w_c\, t'_{ic}\, \ell_{ic}` with
:math:`t' = (1-\varepsilon)t + \varepsilon/C`, and ``mean`` divides by the number of
positions, not by the weights.

Write :math:`q_{ic}` for the weighted target that multiplies :math:`-\ell_{ic}` above and
:math:`g_i` for the upstream gradient of :math:`L_i` (``grad_output / D`` for ``mean``).
Then the whole backward is

.. math::

   \frac{\partial L}{\partial x_{ij}} = g_i\Big(s_{ij} \sum_c q_{ic} - q_{ij}\Big),

which for one-hot targets without weights is the familiar
:math:`(\operatorname{softmax}(x) - \operatorname{onehot}(y))/N`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .softmax import softmax

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
        raise ValueError(
            f"{fn}: input must have a class dimension, shape (C,) or (N, C, d1, ...); "
            "got a 0-dimensional tensor"
        )
    if not input.is_floating_point():
        raise TypeError(f"{fn}: input must be a floating-point tensor; got dtype {input.dtype}")


def _check_weight(fn: str, weight: Tensor | None, n_classes: int) -> None:
    if weight is not None and (weight.dim() != 1 or weight.numel() != n_classes):
        raise ValueError(
            f"{fn}: weight must have shape ({n_classes},), one entry per class; "
            f"got shape {tuple(weight.shape)}"
        )


def _check_index_target(fn: str, input: Tensor, target: Tensor, ignore_index: int) -> bool:
    """Validate class-index targets; return whether every one is a real class, none ignored."""
    if target.dtype not in _INDEX_DTYPES:
        raise TypeError(
            f"{fn}: target must hold class indices of dtype torch.int64 (or torch.uint8), "
            f"or class probabilities with the input's shape {tuple(input.shape)}; "
            f"got dtype {target.dtype} and shape {tuple(target.shape)}"
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
        raise ValueError(
            f"{fn}: target shape must be {expected} for input shape {tuple(input.shape)}; "
            f"got {tuple(target.shape)}"
        )
    n_classes = _n_classes(input)
    if target.numel() == 0:
        return True
    lo, hi = (int(v) for v in torch.stack(torch.aminmax(target.long())).tolist())
    if lo >= 0 and hi < n_classes:
        return not (lo <= ignore_index <= hi and bool((target == ignore_index).any()))
    bad = ((target < 0) | (target >= n_classes)) & (target != ignore_index)
    if bool(bad.any()):
        value = int(target[bad].flatten()[0])
        raise IndexError(
            f"{fn}: target values must be class indices in [0, {n_classes - 1}] "
            f"or ignore_index={ignore_index}; got {value}"
        )
    return False


def _check_prob_target(fn: str, target: Tensor, ignore_index: int) -> None:
    if not target.is_floating_point():
        raise TypeError(
            f"{fn}: a target with the input's shape holds class probabilities and must be "
            f"floating point; got dtype {target.dtype}"
        )
    if ignore_index >= 0:
        raise ValueError(
            f"{fn}: ignore_index is not supported with class-probability targets; "
            f"got ignore_index={ignore_index}"
        )


def _check_label_smoothing(fn: str, label_smoothing: float) -> None:
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0.0, 1.0]; got {label_smoothing}")


def _is_prob_target(input: Tensor, target: Tensor) -> bool:
    return input.shape == target.shape


def _check_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
    reduction: str, label_smoothing: float, fn: str = "cross_entropy",
) -> tuple[bool, bool]:
    """Validate the arguments of :func:`cross_entropy`; errors are prefixed by ``fn``.

    Returns whether the targets are probabilities, and whether the call is the plain
    case: class indices, none ignored, no class weights, no label smoothing.
    """
    _check_reduction(fn, reduction)
    _check_input(fn, input)
    _check_label_smoothing(fn, label_smoothing)
    _check_weight(fn, weight, _n_classes(input))
    if _is_prob_target(input, target):
        _check_prob_target(fn, target, ignore_index)
        return True, False
    none_ignored = _check_index_target(fn, input, target, ignore_index)
    return False, none_ignored and weight is None and label_smoothing == 0


def _check_nll(
    input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: str
) -> None:
    fn = "nll_loss"
    _check_reduction(fn, reduction)
    _check_input(fn, input)
    _check_weight(fn, weight, _n_classes(input))
    _check_index_target(fn, input, target, ignore_index)


# ------------------------------------------------------------------ shared machinery


def _n_classes(input: Tensor) -> int:
    return input.shape[0] if input.dim() == 1 else input.shape[1]


def _batched(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """View an unbatched ``(C,)`` problem as a batch of one; the class dim is then 1."""
    if input.dim() == 1:
        return input.unsqueeze(0), target.unsqueeze(0)
    return input, target


def _class_view(weight: Tensor, input: Tensor) -> Tensor:
    """Reshape ``weight`` (C,) to broadcast along dimension 1 of ``input``."""
    return weight.to(input.dtype).view((1, -1) + (1,) * (input.dim() - 2))


def _target_indices(target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Return ``(y, m)``: indices safe to gather (ignored ones set to 0) and the mask m_i."""
    keep = target != ignore_index
    return torch.where(keep, target, torch.zeros_like(target)).long(), keep


def _target_weight(
    y: Tensor, keep: Tensor, weight: Tensor | None, dtype: torch.dtype
) -> Tensor:
    """:math:`m_i w_{y_i}` for every sample position."""
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
    r""":math:`g_i`, the gradient arriving at each per-sample loss :math:`L_i`."""
    if reduction == "mean":
        grad_output = grad_output / denominator
    return grad_output.expand_as(like)


def _unbatch(result: Tensor, unbatched: bool) -> Tensor:
    return result.squeeze(0) if unbatched else result


# ------------------------------------------------------------------------------- NLL


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Negative log-likelihood of log-probabilities: :math:`L_i = -m_i w_{y_i} x_{i y_i}`.

    ``input`` holds log-probabilities of shape ``(C,)``, ``(N, C)`` or
    ``(N, C, d1, ...)``; ``target`` class indices of shape ``()``, ``(N,)`` or
    ``(N, d1, ...)``. ``mean`` divides by :math:`\sum_i m_i w_{y_i}`. Only the target
    entry of each row enters the loss; the other entries are never read.
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
    r""":math:`\partial L/\partial x_{ic} = -g_i\, m_i w_{y_i}\, \delta_{c y_i}`: only the target entry moves.

    For ``mean`` without weights that is :math:`-1/N` at the target and 0 elsewhere.
    """
    _check_nll(input, target, weight, ignore_index, reduction)
    x, t = _batched(input, target)
    y, keep = _target_indices(t, ignore_index)
    wy = _target_weight(y, keep, weight, x.dtype)
    g = grad_output.unsqueeze(0) if (reduction == "none" and input.dim() == 1) else grad_output
    coef = torch.where(keep, _upstream(g.to(x.dtype), reduction, _total(wy), wy) * wy, 0.0)
    grad = torch.zeros_like(x).scatter_(1, y.unsqueeze(1), -coef.unsqueeze(1))
    return _unbatch(grad, input.dim() == 1)


# ----------------------------------------------------------------------- cross-entropy


def _softmax_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Return :math:`m_i = \max_k x_{ik}`, :math:`e_{ic} = e^{x_{ic} - m_i}` and :math:`\sum_k e_{ik}`."""
    shift = x.amax(1, keepdim=True)
    e = (x - shift).exp_()
    return shift, e, e.sum(1, keepdim=True)


def _softmax_inplace(x: Tensor) -> Tensor:
    """Softmax along dimension 1 computed in a single new buffer."""
    _, e, sums = _softmax_parts(x)
    return e.div_(sums)


def _prob_weights(target: Tensor, weight: Tensor | None, label_smoothing: float,
                  like: Tensor, n_classes: int | None = None) -> Tensor:
    r"""The weighted, smoothed probability target :math:`q_{ic} = w_c\, t'_{ic}`.

    Here :math:`t' = (1-\varepsilon)t + \varepsilon/C`: the target mixed with the uniform
    distribution over the :math:`C` classes. ``n_classes`` is :math:`C` when ``target``
    holds only a block of the classes (default: ``like.shape[1]``).
    """
    n_classes = like.shape[1] if n_classes is None else n_classes
    t = target.to(like.dtype)
    if label_smoothing > 0:
        t = t * (1 - label_smoothing) + label_smoothing / n_classes
    return t if weight is None else t * _class_view(weight, like)


def _ce_per_sample(
    x: Tensor, shift: Tensor, log_sums: Tensor, target: Tensor, weight: Tensor | None,
    ignore_index: int, label_smoothing: float, prob: bool,
) -> tuple[Tensor, Tensor | float]:
    r"""Per-position losses :math:`L_i` (batched) and the ``mean`` denominator :math:`D`.

    Uses :math:`\ell_{ic} = (x_{ic} - m_i) - \log\sum_k e^{x_{ik} - m_i}`; for plain
    class-index targets only the target column of :math:`\ell` is ever formed.
    """
    n_classes = x.shape[1]
    eps = label_smoothing
    if prob:
        q = _prob_weights(target, weight, eps, x)
        return -(q * (x - shift - log_sums)).sum(1), x.numel() / n_classes
    w = None if weight is None else _class_view(weight, x)
    y, keep = _target_indices(target, ignore_index)
    wy = _target_weight(y, keep, weight, x.dtype)
    x_y = x.gather(1, y.unsqueeze(1)) - shift
    per = (wy * (log_sums - x_y).squeeze(1))
    if eps > 0:
        logp = x - shift - log_sums
        smooth = -(logp if w is None else logp * w).sum(1)
        per = (1 - eps) * per + (eps / n_classes) * smooth
    return torch.where(keep, per, torch.zeros_like(per)), _total(wy)


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
    :math:`\ell_{ic}` is taken inside. ``target`` holds class indices (shape of
    ``input`` without the class dimension) or class probabilities (shape of
    ``input``). See the module docstring for :math:`L_i` and the reductions.
    """
    prob, _ = _check_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)
    x, t = _batched(input, target)
    shift, _, sums = _softmax_parts(x)
    per, denominator = _ce_per_sample(
        x, shift, sums.log(), t, weight, ignore_index, label_smoothing, prob
    )
    if reduction == "none":
        return _unbatch(per, input.dim() == 1)
    return _reduce(per, reduction, denominator)


def _ce_grad_from_softmax(
    s: Tensor, g: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
    label_smoothing: float, prob: bool, inplace: bool,
) -> Tensor:
    r"""Turn the softmax ``s`` into :math:`g_i(s_{ij}\sum_c q_{ic} - q_{ij})`.

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
        s = sub(s, (eps / n_classes) * a.unsqueeze(1) * (1.0 if w is None else w))
    return scatter_add(s, 1, y.unsqueeze(1), (-(1 - eps) * a * wy).unsqueeze(1))


def _positions(target: Tensor, like: Tensor) -> Tensor:
    """The number of sample positions in ``like``'s dtype (in float16 it may round to inf)."""
    return torch.tensor(float(target.numel()), dtype=like.dtype, device=like.device)


def _plain_grad_from_softmax(s: Tensor, scale: Tensor, target: Tensor) -> Tensor:
    r"""The plain case, in place on the softmax :math:`s`: :math:`g_i(s_{ic} - \delta_{c y_i})`.

    No weights, no smoothing, nothing ignored, so :math:`q_{ic} = \delta_{c y_i}` and
    :math:`\sum_c q_{ic} = 1`; ``scale`` holds :math:`g_i` (a scalar or one per position).
    """
    scale = scale.to(s.dtype).unsqueeze(1) if scale.dim() else scale.to(s.dtype)
    index = target.long().unsqueeze(1)
    return s.mul_(scale).scatter_add_(1, index, (-scale).expand(index.shape))


def _ce_denominator(
    input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, prob: bool
) -> Tensor | float:
    if prob:
        return input.numel() / input.shape[1]
    y, keep = _target_indices(target, ignore_index)
    return _total(_target_weight(y, keep, weight, input.dtype))


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

    .. math:: \frac{\partial L}{\partial x_{ij}} = g_i\Big(s_{ij}\sum_c q_{ic} - q_{ij}\Big)

    with :math:`s = \operatorname{softmax}(x)` along the class dimension, :math:`q` the
    weighted (smoothed) target and :math:`g_i` the upstream gradient of :math:`L_i`.
    Only one tensor of the input's size is allocated: the result.
    """
    prob, plain = _check_cross_entropy(input, target, weight, ignore_index, reduction,
                                       label_smoothing)
    x, t = _batched(input, target)
    g = grad_output.to(x.dtype)
    if reduction == "none" and input.dim() == 1:
        g = g.unsqueeze(0)
    # Under create_graph (double backward) autograd records these operations, so
    # they must not overwrite anything; otherwise the softmax buffer becomes the result.
    inplace = not (torch.is_grad_enabled() and (x.requires_grad or g.requires_grad))
    if plain and inplace:
        scale = g if reduction != "mean" else g / _positions(t, x)
        return _unbatch(_plain_grad_from_softmax(_softmax_inplace(x), scale, t), input.dim() == 1)
    denominator = _ce_denominator(x, t, weight, ignore_index, prob)
    g = _upstream(g, reduction, denominator, x.select(1, 0)).contiguous()
    s = softmax(x, dim=1) if not inplace else _softmax_inplace(x)
    grad = _ce_grad_from_softmax(s, g, t, weight, ignore_index, label_smoothing, prob, inplace)
    return _unbatch(grad, input.dim() == 1)


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
    :math:`\log\sum_k e^{x_{ik}}` is read off their row sums before they are
    normalised in place. This is what a training loop wants, since the gradient of a
    scalar loss is needed right after the loss itself.
    """
    if reduction == "none":
        raise ValueError(
            "cross_entropy_forward_backward: reduction must be 'mean' or 'sum' "
            "(a scalar loss); got 'none'"
        )
    prob, plain = _check_cross_entropy(input, target, weight, ignore_index, reduction,
                                       label_smoothing)
    x, t = _batched(input, target)
    shift, e, sums = _softmax_parts(x)
    one = torch.ones((), dtype=x.dtype, device=x.device)
    if plain:
        per = (sums.log() + shift).squeeze(1) - x.gather(1, t.long().unsqueeze(1)).squeeze(1)
        count = _positions(t, x)
        scale = one / count if reduction == "mean" else one
        grad = _plain_grad_from_softmax(e.div_(sums), scale, t)
        return _reduce(per, reduction, count), _unbatch(grad, input.dim() == 1)
    per, denominator = _ce_per_sample(
        x, shift, sums.log(), t, weight, ignore_index, label_smoothing, prob
    )
    loss = _reduce(per, reduction, denominator)
    g = _upstream(one, reduction, denominator, per).contiguous()
    s = e.div_(sums)
    grad = _ce_grad_from_softmax(s, g, t, weight, ignore_index, label_smoothing, prob, True)
    return loss, _unbatch(grad, input.dim() == 1)


# -------------------------------------------------------------------------------- MSE


def mse_loss(input: Tensor, target: Tensor, reduction: Reduction = "mean") -> Tensor:
    r""":math:`L = \frac{1}{K}\sum_k (x_k - t_k)^2` over all :math:`K` elements (``mean``)."""
    _check_mse(input, target, reduction)
    per = (input - target) ** 2
    return _reduce(per, reduction, per.numel())


def mse_loss_backward(
    grad_output: Tensor, input: Tensor, target: Tensor, reduction: Reduction = "mean"
) -> Tensor:
    r""":math:`\partial L/\partial x_k = 2 g_k (x_k - t_k)`, divided by :math:`K` for ``mean``."""
    _check_mse(input, target, reduction)
    scale = 2.0 / input.numel() if reduction == "mean" else 2.0
    return scale * grad_output * (input - target)


def _check_mse(input: Tensor, target: Tensor, reduction: str) -> None:
    _check_reduction("mse_loss", reduction)
    if input.shape != target.shape:
        raise ValueError(
            f"mse_loss: target shape must equal input shape {tuple(input.shape)}; "
            f"got {tuple(target.shape)}"
        )
    if not input.is_floating_point():
        raise TypeError(f"mse_loss: input must be a floating-point tensor; got dtype {input.dtype}")
