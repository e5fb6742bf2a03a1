r"""The arguments of :func:`byhand.linear_cross_entropy.linear_cross_entropy`, checked.

:class:`LinearCEInputs` holds a call's tensors and :class:`LinearCESettings` its keyword
settings. :func:`prepare` validates a call (the linear layer's shapes and dtypes, the
chunk sizes, the soft cap and z-loss scale, then the cross-entropy's own arguments
through :func:`byhand.cross_entropy_checks.validate` on a stand-in of the logits) and
returns the :class:`byhand.sweep_problem.Sweep` that computes it. Errors name the
argument and are of PyTorch's type (see :mod:`byhand.errors`). :func:`autocast_arguments`
casts the call's tensors as :func:`torch.autocast` would (:func:`logits_dtype` is then
float32), and :func:`has_tangent` says
whether a forward-mode tangent rides on one of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd import forward_ad

from .cross_entropy_checks import validate_call
from .cross_entropy_core import CrossEntropyOptions, Reduction
from .errors import ArgumentTypeError, ArgumentValueError, UnsupportedDTypeError
from .sweep_problem import Sweep, stand_in

__all__ = ["LinearCEInputs", "LinearCESettings", "autocast_arguments", "autocasting", "check_linear",
           "check_settings", "has_tangent", "logits_dtype", "options_from", "prepare"]

_FN = "linear_cross_entropy"


class LinearCEInputs(NamedTuple):
    """The tensors of one call, in the order of ``LinearCrossEntropy.forward``: the linear
    layer's three (``linear_bias`` may be None), the target and the class ``weight``.

    Examples:
        >>> inputs = LinearCEInputs(torch.zeros(2, 3), torch.zeros(5, 3), None,
        ...                         torch.tensor([0, 4]), None)
        >>> inputs.linear_weight.shape, inputs.target.tolist()
        (torch.Size([5, 3]), [0, 4])
    """

    #: The layer's input :math:`a_{np}`, ``(N, H)`` or ``(H,)``.
    input: Tensor
    #: The layer's weight :math:`W_{jp}`, ``(V, H)`` or ``(V, d1, ..., H)``.
    linear_weight: Tensor
    #: The layer's bias :math:`b_j`, ``(V,)`` or ``(V, d1, ...)``, or None.
    linear_bias: Tensor | None
    #: Class indices, or class probabilities of the logits' shape ``(N, V)``.
    target: Tensor
    #: The class weights :math:`w_j`, ``(V,)``, or None.
    weight: Tensor | None


@dataclass(frozen=True, eq=False)
class LinearCESettings:
    """The keyword settings of one call: the loss's options, the chunk sizes, and
    ``result_dtype``, the loss's dtype when :func:`torch.autocast` fixes it (None: the
    dtype PyTorch gives for the inputs).

    Examples:
        >>> settings = LinearCESettings(reduction="sum", chunk_size=2)
        >>> settings.reduction, settings.chunk_size, settings.ignore_index
        ('sum', 2, None)
        >>> LinearCESettings.of({"reduction": "none"}).reduction
        'none'
    """

    reduction: Reduction = "mean"
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    chunk_size: int | None = None
    vocab_chunk_size: int | None = None
    softcap: float | None = None
    lse_square_scale: float = 0.0
    denominator: Tensor | float | None = None
    result_dtype: torch.dtype | None = None

    @classmethod
    def of(cls, settings: LinearCESettings | Mapping[str, Any]) -> LinearCESettings:
        """``settings`` itself, or the settings a mapping of the same names gives."""
        return settings if isinstance(settings, LinearCESettings) else cls(**settings)


def check_linear(input: Tensor, linear_weight: Tensor, linear_bias: Tensor | None) -> None:
    """Shapes and dtypes of the linear layer's three tensors.

    Examples:
        >>> import torch
        >>> check_linear(torch.zeros(2, 3), torch.zeros(5, 4), None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.errors.ArgumentValueError: linear_cross_entropy: linear_weight must have shape (V, 3) ...
    """
    if not input.is_floating_point():
        raise UnsupportedDTypeError(
            f"{_FN}: input must be a floating-point tensor; got dtype {input.dtype}")
    if input.dim() not in (1, 2):
        raise ArgumentValueError(f"{_FN}: input must have shape (H,) or (N, H); "
                                 f"got shape {tuple(input.shape)}")
    if linear_weight.dim() < 2:
        raise ArgumentValueError(f"{_FN}: linear_weight must have shape (V, H) or "
                                 f"(V, d1, ..., H); got shape {tuple(linear_weight.shape)}")
    if linear_weight.shape[-1] != input.shape[-1]:
        raise ArgumentValueError(
            f"{_FN}: linear_weight must have shape (V, {input.shape[-1]}) to match input's "
            f"last dimension H={input.shape[-1]}; got shape {tuple(linear_weight.shape)}"
        )
    for name, t in (("linear_weight", linear_weight), ("linear_bias", linear_bias)):
        if t is not None and t.dtype != input.dtype:
            raise ArgumentTypeError(f"{_FN}: {name} must have input's dtype {input.dtype}; "
                                    f"got {t.dtype}")
    expected = tuple(linear_weight.shape[:-1])
    if linear_bias is not None and tuple(linear_bias.shape) != expected:
        raise ArgumentValueError(f"{_FN}: linear_bias must have shape {expected}; "
                                 f"got shape {tuple(linear_bias.shape)}")


def check_settings(settings: LinearCESettings) -> None:
    """The chunk sizes (positive ints or None), ``softcap`` (positive or None) and
    ``lse_square_scale`` (at least 0) of a call's keyword ``settings``."""
    for name, size in (("chunk_size", settings.chunk_size),
                       ("vocab_chunk_size", settings.vocab_chunk_size)):
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"{_FN}: {name} must be a positive int or None; got {size!r}")
    cap = settings.softcap
    if cap is not None and not (isinstance(cap, (int, float)) and 0 < cap < math.inf):
        raise ArgumentValueError(f"{_FN}: softcap must be a positive number or None; got {cap!r}")
    scale = settings.lse_square_scale
    if not (isinstance(scale, (int, float)) and 0 <= scale < math.inf):
        raise ArgumentValueError(
            f"{_FN}: lse_square_scale must be a number >= 0; got {scale!r}")


def options_from(target: Tensor, logits_shape: tuple[int, ...], weight: Tensor | None,
                 settings: LinearCESettings) -> CrossEntropyOptions:
    """The loss's options from the keyword ``settings``; ``ignore_index`` None means -100,
    the only value allowed for probabilities."""
    ignore_index = settings.ignore_index
    if target.shape == logits_shape and ignore_index is not None:
        raise ArgumentValueError(f"{_FN}: ignore_index cannot be given with class-probability "
                                 f"targets; got ignore_index={ignore_index}")
    return CrossEntropyOptions(
        weight, -100 if ignore_index is None else ignore_index, settings.label_smoothing,
        settings.reduction, softcap=settings.softcap,
        lse_square_scale=settings.lse_square_scale, denominator=settings.denominator)


def prepare(input: Tensor, linear_weight: Tensor, linear_bias: Tensor | None, target: Tensor,
            weight: Tensor | None, settings: LinearCESettings) -> Sweep:
    """Check the arguments; return the batched sweep.

    The cross-entropy's own checks run on a stand-in of the logits
    (:func:`~byhand.sweep_problem.stand_in`): their shape ``(N, V)`` and dtype, one
    element of storage, so that no logits are formed to validate them.
    """
    check_linear(input, linear_weight, linear_bias)
    check_settings(settings)
    logits_shape = (*input.shape[:-1], linear_weight.shape[0])
    options = options_from(target, logits_shape, weight, settings)
    logits = stand_in(input, logits_shape, logits_dtype(input, settings))
    _, every_kept = validate_call(_FN, logits, target, options)
    a, t = (input.unsqueeze(0), target.unsqueeze(0)) if input.dim() == 1 else (input, target)
    return Sweep(a, linear_weight, linear_bias, t, options, settings.chunk_size,
                 settings.vocab_chunk_size, every_kept)


def autocast_arguments(inputs: LinearCEInputs) -> tuple[LinearCEInputs, torch.dtype | None]:
    """The call's tensors as :func:`torch.autocast`, on for the input's device
    (:func:`autocasting`), would give them to ``linear`` and ``cross_entropy``, and
    float32, the loss's dtype there: the linear layer's three in autocast's dtype
    (differentiably: the gradients return in the parameters' dtypes), and the loss's
    floating target and class weights in float32, its float32 policy's dtype. Autocast
    leaves float64 as it is, so a float64 input gives no float32 loss dtype (None).

    Examples:
        >>> inputs = LinearCEInputs(torch.zeros(2, 3), torch.zeros(5, 3), None,
        ...                         torch.tensor([0, 4]), torch.ones(5, dtype=torch.bfloat16))
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     cast, result_dtype = autocast_arguments(inputs)
        >>> cast.input.dtype, cast.weight.dtype, result_dtype
        (torch.bfloat16, torch.float32, torch.float32)
    """
    dtype = torch.get_autocast_dtype(inputs.input.device.type)
    input, linear_weight, linear_bias, target, weight = (
        t if t is None or not t.is_floating_point() or t.dtype == torch.float64
        else t.to(to) for t, to in zip(inputs, (dtype, dtype, dtype, torch.float32, torch.float32),
                                       strict=True))
    assert input is not None and linear_weight is not None and target is not None
    cast = LinearCEInputs(input, linear_weight, linear_bias, target, weight)
    return cast, None if input.dtype == torch.float64 else torch.float32


def autocasting(input: Tensor) -> bool:
    """Whether :func:`torch.autocast` is on for ``input``'s device (CPU or CUDA)."""
    device = input.device.type
    return device in ("cpu", "cuda") and torch.is_autocast_enabled(device)


def logits_dtype(input: Tensor, settings: LinearCESettings) -> torch.dtype:
    """The dtype in which the cross-entropy sees the logits: float32 under
    :func:`torch.autocast` (``settings.result_dtype``), the input's otherwise."""
    return settings.result_dtype or input.dtype


def has_tangent(inputs: LinearCEInputs, settings: LinearCESettings) -> bool:
    """Whether a forward-mode tangent (:mod:`torch.autograd.forward_ad`,
    :func:`torch.func.jvp`) rides on any tensor of the call."""
    for t in (*inputs, settings.denominator):
        if isinstance(t, Tensor) and forward_ad.unpack_dual(t).tangent is not None:  # type: ignore[no-untyped-call]  # unannotated in torch
            return True
    return False
