r"""The formulas every cross-entropy in ``byhand`` shares, written once.

:func:`byhand.losses.cross_entropy`, :func:`byhand.losses.nll_loss`,
:func:`byhand.linear_cross_entropy.linear_cross_entropy` and
:func:`byhand.distributed.global_cross_entropy` all take their options as one
:class:`CrossEntropyOptions`, validate them with
:func:`byhand.cross_entropy_checks.validate`, and build the loss
and its gradient from the functions here.

Notation (the book's). The logits are :math:`x_{nj}`, samples :math:`n`, classes
:math:`j, k` (the class dimension is 1 once :func:`batched`); :math:`y_n` a class-index
target, :math:`\mu_n` the ignore mask (0 where :math:`y_n` is ``ignore_index``),
:math:`w_j` the class weights (all 1 without ``weight``), :math:`\varepsilon` the label
smoothing over :math:`C` classes. The *effective target* :math:`\tilde t_{nj}` is the
row with :math:`L_n = -\sum_j \tilde t_{nj}\,\ell_{nj}`
(:math:`\ell_{nj} = x_{nj} - \log\sum_k e^{x_{nk}}`). For class indices

.. math::

   \tilde t_{nj} = \mu_n\big[(1-\varepsilon)\,w_{y_n}\delta_{j y_n} + \tfrac{\varepsilon}{C}\,w_j\big],

and for probabilities :math:`t_{nj}`

.. math::

   \tilde t_{nj} = w_j\big[(1-\varepsilon)\,t_{nj} + \tfrac{\varepsilon}{C}\big].

``mean`` divides by the *denominator* :math:`D = \sum_n \mu_n w_{y_n}` (class indices)
or the number of positions :math:`M` (probabilities). With :math:`G` the upstream
gradient at the reduced loss, the gradient reaching :math:`L_n` is :math:`g_n = G/D`
(``mean``), :math:`G` (``sum``) or the given vector (``none``), and the *gradient from
the softmax* :math:`s_{nj}` is

.. math:: \frac{\partial L}{\partial x_{nj}} = g_n\Big(s_{nj}\sum_k \tilde t_{nk} - \tilde t_{nj}\Big).

Nothing here reads a device tensor on the host: target values are checked only where
reading them is free (:func:`byhand.cross_entropy_checks.host_values`), and a mask,
never a branch, says whether a position is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .reduction import Reduction

__all__ = [
    "CrossEntropyOptions",
    "Reduction",
    "batched",
    "class_count",
    "denominator",
    "effective_probabilities",
    "effective_target",
    "grad_from_softmax",
    "input_gradient",
    "loss_dtype",
    "per_sample_loss",
    "plain_grad_from_softmax",
    "position_count",
    "positions_like",
    "reduce",
    "row_mask",
    "smoothing_per_class",
    "soft_cap",
    "soft_cap_backward",
    "softmax_parts",
    "target_indices",
    "target_weight",
    "total",
    "unbatched",
    "upstream",
    "z_loss",
    "z_loss_factor",
    "z_loss_gradient",
]

@dataclass(frozen=True)
class CrossEntropyOptions:
    r"""The options of one cross-entropy call, as :func:`torch.nn.functional.cross_entropy` names them.

    One object instead of loose positionals: every function of this module that needs
    an option takes it. Further options of the same loss (a logit soft cap, a z-loss
    scale, a global ``mean`` denominator) belong here as new fields with neutral
    defaults, so no signature changes when they come.

    The fields beyond PyTorch's, each neutral by default:

    * ``softcap`` :math:`c`: the logits are capped to :math:`c\tanh(x_{nj}/c)` before
      the softmax (Gemma 2); None leaves them alone.
    * ``lse_square_scale`` :math:`\zeta`: the z-loss :math:`\zeta\,\mu_n
      \mathrm{lse}_n^2` is added to each :math:`L_n` (PaLM); 0 adds nothing.
    * ``denominator`` :math:`D`: what ``mean`` divides by instead of the local
      :math:`\sum_n \mu_n w_{y_n}` (a tensor or a number), so that per-rank means add
      up to the global one; None divides by the local count.

    Examples:
        >>> CrossEntropyOptions(label_smoothing=0.1)  # doctest: +ELLIPSIS
        CrossEntropyOptions(weight=None, ignore_index=-100, label_smoothing=0.1, reduction='mean', ...)
        >>> CrossEntropyOptions().plain, CrossEntropyOptions(label_smoothing=0.1).plain
        (True, False)
    """

    weight: Tensor | None = None
    ignore_index: int = -100
    label_smoothing: float = 0.0
    reduction: Reduction = "mean"
    softcap: float | None = None
    lse_square_scale: float = 0.0
    denominator: Tensor | float | None = None

    @property
    def plain(self) -> bool:
        """No class weights and no smoothing (then :math:`\\tilde t_{nj} = \\mu_n\\delta_{j y_n}`)."""
        return self.weight is None and self.label_smoothing == 0


# ------------------------------------------------------------------------------ shapes


def class_count(input: Tensor) -> int:
    """:math:`C`, the size of the class dimension (0 of a ``(C,)`` input, else 1)."""
    return input.shape[0] if input.dim() == 1 else input.shape[1]


def batched(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """View an unbatched ``(C,)`` problem as a batch of one; the class dim is then 1."""
    if input.dim() == 1:
        # class indices: a () or (1,) target, as PyTorch takes both; probabilities: (C,)
        return input.unsqueeze(0), (target.unsqueeze(0) if target.is_floating_point()
                                    else target.reshape(1))
    return input, target


def unbatched(result: Tensor, was_unbatched: bool) -> Tensor:
    """Undo :func:`batched` on a result."""
    return result.squeeze(0) if was_unbatched else result


def positions_like(x: Tensor) -> Tensor:
    """A stand-in of shape ``(N, d1, ...)``, the sample positions of ``x``; it holds one number."""
    return x.new_empty(()).expand(x.shape[0], *x.shape[2:])


def _class_view(weight: Tensor, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Reshape ``weight`` (C,) to broadcast along dimension 1 of ``like`` (in ``dtype``)."""
    return weight.to(dtype or like.dtype).view((1, -1) + (1,) * (like.dim() - 2))


def loss_dtype(input: Tensor, target: Tensor, weight: Tensor | None) -> torch.dtype:
    """The loss's dtype: the input's, promoted with the target's and weight's for probabilities."""
    if not target.is_floating_point():
        return input.dtype
    dtype = torch.promote_types(input.dtype, target.dtype)
    return dtype if weight is None else torch.promote_types(dtype, weight.dtype)


# ------------------------------------------------------------------ the effective target


def target_indices(target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    r"""Return ``(y, keep)``: indices safe to gather (ignored ones set to 0) and the mask :math:`\mu_n`.

    The comparison is made in int64: a ``uint8`` target 156 is a class, not the
    default ``ignore_index`` -100 (which ``uint8`` arithmetic would wrap to 156).
    """
    target = target.long()
    keep = target != ignore_index
    return torch.where(keep, target, 0), keep


def target_weight(y: Tensor, keep: Tensor, weight: Tensor | None, dtype: torch.dtype) -> Tensor:
    r""":math:`\mu_n w_{y_n}` for every sample position :math:`n` (:math:`\mu_n` without weights)."""
    m = keep.to(dtype)
    return m if weight is None else m * weight.to(dtype)[y]


def smoothing_per_class(label_smoothing: float, n_classes: int) -> float:
    r""":math:`\varepsilon/C`, the smoothing mass each class receives (0 when there are no classes)."""
    return label_smoothing / n_classes if n_classes else 0.0


def effective_probabilities(target: Tensor, options: CrossEntropyOptions, like: Tensor,
                            n_classes: int | None = None) -> Tensor:
    r"""The effective probability target :math:`\tilde t_{nj} = w_j\, t'_{nj}`.

    Here :math:`t'_{nj} = (1-\varepsilon)\,t_{nj} + \varepsilon/C`: the target mixed with
    the uniform distribution over the :math:`C` classes, in the promoted dtype of
    ``like``, target and weight. ``target`` may hold only a block of the classes; then
    ``options.weight`` is that block's and ``n_classes`` is :math:`C` (default: ``like.shape[1]``).
    """
    n_classes = like.shape[1] if n_classes is None else n_classes
    eps, weight = options.label_smoothing, options.weight
    t = target.to(loss_dtype(like, target, weight))
    if eps > 0:
        t = t * (1 - eps) + smoothing_per_class(eps, n_classes)
    return t if weight is None else t * _class_view(weight, like, t.dtype)


def effective_target(target: Tensor, options: CrossEntropyOptions, like: Tensor,
                     cols: slice, n_classes: int) -> Tensor:
    r"""Columns ``cols`` of :math:`\tilde t_{nj}` (see the module docstring), as a dense block.

    ``like`` has the block's rows and dtype; ``n_classes`` is :math:`C`. The whole-row
    functions never form :math:`\tilde t` for class indices (they use its sparsity);
    a block of classes at a time does.

    Examples:
        >>> opts = CrossEntropyOptions(label_smoothing=0.3)
        >>> effective_target(torch.tensor([2, -100]), opts, torch.zeros(2, 3), slice(0, 3), 3)
        tensor([[0.1000, 0.1000, 0.8000],
                [0.0000, 0.0000, 0.0000]])
    """
    weight = None if options.weight is None else options.weight[cols]
    if target.is_floating_point():
        block = CrossEntropyOptions(weight, options.ignore_index, options.label_smoothing)
        return effective_probabilities(target[:, cols], block, like, n_classes)
    eps = options.label_smoothing
    y, keep = target_indices(target, options.ignore_index)
    wy = target_weight(y, keep, options.weight, like.dtype)
    q = like.new_zeros(like.shape[0], cols.stop - cols.start)
    if eps > 0:
        q += (eps / n_classes) * keep.to(like.dtype).unsqueeze(1) * (
            1.0 if weight is None else weight.to(like.dtype))
    inside = keep & (y >= cols.start) & (y < cols.stop)
    at = torch.where(inside, y - cols.start, torch.zeros_like(y)).unsqueeze(1)
    return q.scatter_add_(1, at, torch.where(inside, (1 - eps) * wy, 0.0).unsqueeze(1))


# ------------------------------------------------------------------ the denominator


def total(t: Tensor) -> Tensor:
    """Sum every entry in at least float32, then round to ``t``'s dtype.

    This is how PyTorch reduces float16 and bfloat16 losses: summed naively in half
    precision, the result would depend on how the work is split between threads.
    """
    summed = t.sum(dtype=torch.promote_types(t.dtype, torch.float32))
    return summed if summed.dtype == t.dtype else summed.to(t.dtype)


def position_count(x: Tensor, dtype: torch.dtype) -> float:
    """The number of positions :math:`N` of ``x`` as PyTorch's ``mean`` divides by it: in ``dtype``.

    In float16 a count from 65,520 on rounds to infinity, as PyTorch's denominator does
    (the loss becomes nan or 0 and the gradient 0); in bfloat16 it rounds to 8 bits.

    Examples:
        >>> x = torch.zeros(257, 3)
        >>> position_count(x, torch.float32)
        257.0
        >>> position_count(x, torch.bfloat16)
        256.0
    """
    n = x.numel() // x.shape[1]
    if dtype in (torch.float16, torch.bfloat16):
        return float(torch.tensor(n, dtype=dtype))
    return float(n)


def denominator(x: Tensor, target: Tensor, options: CrossEntropyOptions, *,
                every_kept: bool = False) -> Tensor | float:
    r"""The ``mean`` denominator: :math:`D = \sum_n \mu_n w_{y_n}`, or :math:`M` positions for probabilities.

    ``x`` and ``target`` are batched. :math:`M` is 0 when the input is empty, even with
    :math:`C = 0` classes, so that the ``mean`` of nothing is :math:`0/0 = \mathrm{nan}`.
    ``every_kept`` (no position ignored, as validation found it:
    :func:`byhand.cross_entropy_checks.validate_call`) makes :math:`D` the count
    :func:`position_count` when there are no class weights, without forming the mask.

    Examples:
        >>> x, y = torch.zeros(4, 3), torch.tensor([0, 2, -100, 2])
        >>> denominator(x, y, CrossEntropyOptions(weight=torch.tensor([1.0, 1.0, 0.5])))
        tensor(2.)
        >>> y = torch.tensor([0, 2, 1, 2])
        >>> denominator(x, y, CrossEntropyOptions(), every_kept=True)
        4.0
    """
    if options.denominator is not None:
        return options.denominator
    if target.is_floating_point():
        return x.numel() // x.shape[1] if x.numel() else 0
    if every_kept and options.weight is None:
        return position_count(x, x.dtype)
    y, keep = target_indices(target, options.ignore_index)
    return total(target_weight(y, keep, options.weight, x.dtype))


def reduce(per_sample: Tensor, reduction: str, denominator: Tensor | float) -> Tensor:
    """:math:`\\sum_n L_n` (``sum``), :math:`\\sum_n L_n / D` (``mean``) or the :math:`L_n` (``none``)."""
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return total(per_sample)
    return total(per_sample) / denominator


def upstream(grad_output: Tensor, reduction: str, denominator: Tensor | float,
             like: Tensor) -> Tensor:
    r""":math:`g_n`, the gradient reaching each per-sample loss :math:`L_n`, one per position.

    From the upstream gradient :math:`G` at the reduced loss, :math:`g_n = G/D` for
    ``mean`` and :math:`g_n = G` for ``sum``; for ``none`` the given :math:`g_n`.
    """
    if reduction == "mean":
        grad_output = grad_output / denominator
    return grad_output.expand_as(like)


# ------------------------------------------------------------------ loss and gradient


def softmax_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Return :math:`m_n = \max_k x_{nk}`, :math:`e_{nj} = e^{x_{nj} - m_n}` and :math:`\sum_k e_{nk}`.

    With no classes (:math:`C = 0`) there is no maximum; the shift is then 0 and the
    sums are 0, so :math:`\log\sum_k e^{x_{nk}} = -\infty`, as in PyTorch.
    """
    shift = x.amax(1, keepdim=True) if x.shape[1] else x.sum(1, keepdim=True)
    e = (x - shift).exp_()
    return shift, e, e.sum(1, keepdim=True)


def per_sample_loss(x: Tensor, shift: Tensor, log_sums: Tensor, target: Tensor,
                    options: CrossEntropyOptions) -> Tensor:
    r"""Per-position losses :math:`L_n = -\sum_j \tilde t_{nj}\ell_{nj}` (batched).

    Uses :math:`\ell_{nj} = (x_{nj} - m_n) - \log\sum_k e^{x_{nk} - m_n}`; for class-index
    targets without smoothing only the target column of :math:`\ell` is ever formed.
    In ``x``'s dtype (promoted for probabilities).
    """
    eps = options.label_smoothing
    if target.is_floating_point():
        q = effective_probabilities(target, options, x)
        return -(q * (x - shift - log_sums)).sum(1)
    y, keep = target_indices(target, options.ignore_index)
    wy = target_weight(y, keep, options.weight, x.dtype)
    x_y = x.gather(1, y.unsqueeze(1)) - shift
    per = wy * (log_sums - x_y).squeeze(1)
    if eps > 0:
        logp = x - shift - log_sums
        w = options.weight
        smooth = -(logp if w is None else logp * _class_view(w, x)).sum(1)
        per = (1 - eps) * per + smoothing_per_class(eps, x.shape[1]) * smooth
    return torch.where(keep, per, torch.zeros_like(per))


def grad_from_softmax(s: Tensor, g: Tensor, target: Tensor, options: CrossEntropyOptions, *,
                      overwrite: bool) -> Tensor:
    r"""Turn the softmax ``s`` into :math:`g_n(s_{nj}\sum_k \tilde t_{nk} - \tilde t_{nj})`.

    For class indices the effective target is
    :math:`\tilde t_{nj} = \mu_n\big[(1-\varepsilon)\,w_{y_n}\delta_{j y_n} + (\varepsilon/C)\,w_j\big]`,
    so :math:`\sum_k \tilde t_{nk} = \mu_n\big[(1-\varepsilon)\,w_{y_n} + \varepsilon\bar w\big]`
    with :math:`\bar w` the mean class weight; for probabilities it is :math:`w_j t'_{nj}`.

    With ``overwrite`` the result overwrites ``s``, so no other tensor of the input's
    size is allocated. Without it ``s`` is left alone: the first product with :math:`g_n`
    is a new tensor (batched under :func:`torch.func.vmap` when :math:`g_n` is, even if
    ``s`` is not), and only that new tensor is written afterwards.
    """
    n_classes, eps = s.shape[1], options.label_smoothing
    if target.is_floating_point():
        q = effective_probabilities(target, options, s)
        if overwrite:
            return s.mul_(q.sum(1, keepdim=True)).sub_(q).mul_(g.unsqueeze(1))
        return (s * q.sum(1, keepdim=True) - q) * g.unsqueeze(1)
    weight = options.weight
    y, keep = target_indices(target, options.ignore_index)
    wy = target_weight(y, keep, weight, s.dtype)
    a = torch.where(keep, g, torch.zeros_like(g))
    w_mean = 1.0 if weight is None else weight.to(s.dtype).sum() / n_classes
    mass = (a * ((1 - eps) * wy + eps * w_mean * keep.to(s.dtype))).unsqueeze(1)
    s = s.mul_(mass) if overwrite else s * mass
    if eps > 0:
        w = 1.0 if weight is None else _class_view(weight, s)
        s = s.sub_(smoothing_per_class(eps, n_classes) * a.unsqueeze(1) * w)
    return s.scatter_add_(1, y.unsqueeze(1), (-(1 - eps) * a * wy).unsqueeze(1))


def plain_grad_from_softmax(s: Tensor, g: Tensor, target: Tensor, ignore_index: int, *,
                            overwrite: bool) -> Tensor:
    r"""The plain case on the softmax :math:`s`: :math:`\mu_n g_n(s_{nj} - \delta_{j y_n})`.

    No weights and no smoothing, so :math:`\tilde t_{nj} = \mu_n\delta_{j y_n}` and
    :math:`\sum_k \tilde t_{nk} = \mu_n`; ``g`` holds :math:`g_n`, one per position.
    """
    y, keep = target_indices(target, ignore_index)
    a = torch.where(keep, g, 0).unsqueeze(1)
    s = s.mul_(a) if overwrite else s * a
    return s.scatter_add_(1, y.unsqueeze(1), -a)


def input_gradient(s: Tensor, g: Tensor, target: Tensor, options: CrossEntropyOptions, *,
                   overwrite: bool) -> Tensor:
    """The logits' gradient from the softmax: :func:`grad_from_softmax`, the plain case by its shortcut."""
    if options.plain and not target.is_floating_point():
        return plain_grad_from_softmax(s, g, target, options.ignore_index, overwrite=overwrite)
    return grad_from_softmax(s, g, target, options, overwrite=overwrite)


# ------------------------------------------- beyond PyTorch: soft cap and z-loss


def row_mask(target: Tensor, options: CrossEntropyOptions, dtype: torch.dtype) -> Tensor:
    r""":math:`\mu_n`, 1 for a position that counts and 0 for an ignored one (all 1 for probabilities).

    Examples:
        >>> row_mask(torch.tensor([2, -100]), CrossEntropyOptions(), torch.float32)
        tensor([1., 0.])
    """
    if target.is_floating_point():
        return torch.ones(target.shape[0], dtype=dtype, device=target.device)
    return (target.long() != options.ignore_index).to(dtype)


def soft_cap(x: Tensor, cap: float | None) -> Tensor:
    r"""Cap the logits in place: :math:`x_{nj} \leftarrow c\tanh(x_{nj}/c)` (``cap`` None: unchanged).

    The capped logits lie in :math:`(-c, c)`, are close to :math:`x` where
    :math:`|x| \ll c`, and keep their order.

    Examples:
        >>> soft_cap(torch.tensor([0.5, 100.0, -100.0]), 30.0)
        tensor([  0.5000,  29.9237, -29.9237])
    """
    return x if cap is None else x.div_(cap).tanh_().mul_(cap)


def soft_cap_backward(grad: Tensor, capped: Tensor, cap: float | None) -> Tensor:
    r"""Chain the capped logits' gradient to the raw logits, in place on ``grad``.

    With :math:`x' = c\tanh(x/c)`, :math:`\partial x'/\partial x = 1 - \tanh^2(x/c) =
    1 - (x'/c)^2`, so :math:`\partial L/\partial x_{nj} = G'_{nj}\,(1 - (x'_{nj}/c)^2)`:
    it needs only the capped logits.

    Examples:
        >>> soft_cap_backward(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 15.0]), 30.0)
        tensor([1.0000, 0.7500])
    """
    if cap is None:
        return grad
    return grad.mul_(1 - (capped / cap).square())


def z_loss(lse: Tensor, mask: Tensor, scale: float) -> Tensor:
    r"""The z-loss of each position, :math:`\zeta\,\mu_n \mathrm{lse}_n^2`.

    It pulls :math:`\mathrm{lse}_n = \log\sum_k e^{x_{nk}}` towards 0, so the
    logits stay where half precision is accurate. An ignored position adds 0.

    Examples:
        >>> z_loss(torch.tensor([2.0, 3.0]), torch.tensor([1.0, 0.0]), 1e-4)
        tensor([0.0004, 0.0000])
    """
    return torch.where(mask > 0, scale * lse.square() * mask, 0.0)


def z_loss_factor(g: Tensor, mask: Tensor, lse: Tensor, scale: float) -> Tensor:
    r"""The row factor :math:`2\zeta\, g_n \mu_n \mathrm{lse}_n` of the z-loss's gradient
    (0 for an ignored row, whatever its :math:`\mathrm{lse}_n`).

    Examples:
        >>> z_loss_factor(torch.ones(2), torch.tensor([1.0, 0.0]), torch.tensor([2.0, 3.0]), 0.5)
        tensor([2., 0.])
    """
    return torch.where(mask > 0, 2 * scale * g * mask * lse, 0.0)


def z_loss_gradient(s: Tensor, g: Tensor, mask: Tensor, lse: Tensor, scale: float) -> Tensor:
    r""":math:`\partial(\zeta\mu_n\mathrm{lse}_n^2)/\partial x_{nj}\cdot g_n =
    2\zeta\, g_n \mu_n \mathrm{lse}_n\, s_{nj}` (a new tensor).

    Examples:
        >>> s = torch.tensor([[0.25, 0.75]])
        >>> z_loss_gradient(s, torch.ones(1), torch.ones(1), torch.tensor([2.0]), 0.5)
        tensor([[0.5000, 1.5000]])
    """
    return s * z_loss_factor(g, mask, lse, scale).unsqueeze(1)

