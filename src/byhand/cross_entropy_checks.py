r"""The checks every cross-entropy in ``byhand`` runs on its arguments, written once.

Each public function of a cross-entropy calls :func:`validate` (or, for a call as
PyTorch's functional API takes it, :func:`validate_call` and :func:`check_types`) with
its own name, so that an error names the function, the argument, what was expected and
what was given, and is of the type PyTorch raises for the same input. Target values are
read on the host only where that is free (:func:`host_values`: a plain CPU tensor
outside ``torch.compile`` and ``torch.func``); elsewhere an out-of-range index is caught
by the gather or scatter that reads it, as in PyTorch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .cross_entropy_core import CrossEntropyOptions, class_count
from .errors import ArgumentTypeError, ArgumentValueError, UnsupportedDTypeError

__all__ = [
    "check_types",
    "host_values",
    "no_target_grad",
    "require_scalar_reduction",
    "validate",
    "validate_call",
]

_REDUCTIONS = ("mean", "sum", "none")
_INDEX_DTYPES = (torch.int64, torch.uint8)


def _named(fn: str, error: Exception) -> Exception:
    """The argument error ``error`` with the public function's name in front of its message."""
    return type(error)(f"{fn}: {error}")


def validate(fn: str, input: Tensor, target: Tensor, options: CrossEntropyOptions, *,
             probabilities: bool = True) -> bool:
    """Check ``input``, ``target`` and ``options`` for ``fn``; return whether ``target`` holds probabilities.

    Errors name ``fn`` and the argument, and are of PyTorch's type (see
    :mod:`byhand.errors`). ``probabilities=False`` (as for ``nll_loss``) accepts
    class indices only.

    Examples:
        >>> x = torch.zeros(2, 3)
        >>> validate("f", x, torch.tensor([0, 2]), CrossEntropyOptions())
        False
        >>> validate("f", x, torch.tensor([0, 3]), CrossEntropyOptions())
        Traceback (most recent call last):
            ...
        IndexError: f: target values must be class indices in [0, 2] or ignore_index=-100; got 3
    """
    return validate_call(fn, input, target, options, probabilities=probabilities)[0]


def validate_call(fn: str, input: Tensor, target: Tensor, options: CrossEntropyOptions, *,
                  probabilities: bool = True) -> tuple[bool, bool]:
    r""":func:`validate`, returning also whether no position is ignored, as far as is known for free.

    The second flag is True only for class-index targets whose values were read
    (:func:`host_values`) and lie in ``[0, C)`` with ``ignore_index`` outside their
    range: then the ignore mask :math:`\mu_n` is all ones and need not be formed.

    Examples:
        >>> x = torch.zeros(2, 3)
        >>> validate_call("f", x, torch.tensor([0, 2]), CrossEntropyOptions())
        (False, True)
        >>> validate_call("f", x, torch.tensor([0, 2]), CrossEntropyOptions(ignore_index=2))
        (False, False)
    """
    try:
        check_types(input, target, options)
        _check_options(options)
        _check_input(input)
        prob = probabilities and input.shape == target.shape
        _check_weight(options.weight, input, prob)
        if prob:
            _check_probabilities(target, options.ignore_index)
            return prob, False
        return prob, _check_indices(input, target, options.ignore_index)
    except (TypeError, ValueError, IndexError, NotImplementedError) as error:
        raise _named(fn, error) from None


def check_types(input: object, target: object, options: CrossEntropyOptions) -> None:
    """Python types first, as PyTorch's argument parser checks them: a ``TypeError`` naming the argument.

    ``input`` and ``target`` must be tensors, ``weight`` a tensor or ``None``,
    ``ignore_index`` an ``int`` (not a ``bool`` or a ``float``), ``label_smoothing`` a number.

    Examples:
        >>> check_types([[1.0]], torch.tensor([0]), CrossEntropyOptions())
        Traceback (most recent call last):
            ...
        TypeError: input must be a Tensor; got list
        >>> options = CrossEntropyOptions(ignore_index=2.0)  # type: ignore[arg-type]
        >>> check_types(torch.zeros(1, 2), torch.tensor([0]), options)
        Traceback (most recent call last):
            ...
        TypeError: ignore_index must be an int; got float 2.0
    """
    for name, value in (("input", input), ("target", target)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a Tensor; got {type(value).__name__}")
    if options.weight is not None and not isinstance(options.weight, Tensor):
        raise TypeError(f"weight must be a Tensor or None; got {type(options.weight).__name__}")
    index = options.ignore_index
    if isinstance(index, bool) or not (isinstance(index, int) or hasattr(index, "__index__")):
        raise TypeError(f"ignore_index must be an int; got {type(index).__name__} {index!r}")
    smoothing = options.label_smoothing
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)):
        raise TypeError(f"label_smoothing must be a float; got {type(smoothing).__name__}")


def _check_options(options: CrossEntropyOptions) -> None:
    if options.reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of 'mean', 'sum' or 'none'; "
                         f"got {options.reduction!r}")
    if not 0.0 <= options.label_smoothing <= 1.0:
        raise ArgumentValueError(
            f"label_smoothing must be in [0.0, 1.0]; got {options.label_smoothing}")


def _check_input(input: Tensor) -> None:
    if input.dim() == 0:
        raise ArgumentValueError(
            "input must have a class dimension, shape (C,) or (N, C, d1, ...); "
            "got a 0-dimensional tensor")
    if not input.is_floating_point():
        raise UnsupportedDTypeError(
            f"input must be a floating-point tensor; got dtype {input.dtype}")


def _check_weight(weight: Tensor | None, input: Tensor, prob: bool) -> None:
    """Shape ``(C,)``; with class-index targets, also the input's dtype (PyTorch promotes none)."""
    if weight is None:
        return
    n_classes = class_count(input)
    if weight.dim() != 1 or weight.numel() != n_classes:
        raise ArgumentValueError(f"weight must have shape ({n_classes},), one entry per class; "
                                 f"got shape {tuple(weight.shape)}")
    if not prob and weight.dtype != input.dtype:
        raise ArgumentTypeError(f"weight must have the input's dtype {input.dtype}; "
                                f"got weight dtype {weight.dtype}")


def _check_indices(input: Tensor, target: Tensor, ignore_index: int) -> bool:
    """Class-index targets: dtype, shape and, where reading is free, the values (True: none ignored)."""
    if target.dtype not in _INDEX_DTYPES:
        raise ArgumentTypeError(
            "target must hold class indices of dtype torch.int64 (or torch.uint8), "
            f"or class probabilities with the input's shape {tuple(input.shape)}; "
            f"got dtype {target.dtype} and shape {tuple(target.shape)}")
    if target.dtype == torch.uint8 and input.dim() > 2:
        raise ArgumentTypeError(
            f"with extra dimensions d1, ... (input shape {tuple(input.shape)}) target "
            f"must have dtype torch.int64, as in PyTorch, which takes torch.uint8 only for "
            f"(C,) and (N, C) inputs; got dtype {target.dtype}")
    _check_index_shape(input, target)
    if target.numel():
        indices = target if target.dtype == torch.int64 else target.long()
        return _check_index_values(indices, class_count(input), ignore_index)
    return False


def _check_index_shape(input: Tensor, target: Tensor) -> None:
    if input.dim() == 1:
        if target.shape not in ((), (1,)):
            raise ValueError(
                f"an unbatched input of shape {tuple(input.shape)} needs a 0-dimensional "
                f"(or 1-element) target; got target shape {tuple(target.shape)}")
    elif target.dim() == 0 or target.shape[0] != input.shape[0]:
        got = "a 0-dimensional target" if target.dim() == 0 else f"{target.shape[0]}"
        raise ValueError(f"target batch size must match input batch size {input.shape[0]}; "
                         f"got {got}")
    elif target.shape[1:] != input.shape[2:]:
        expected = (input.shape[0], *input.shape[2:])
        raise ArgumentValueError(f"target shape must be {expected} for input shape "
                                 f"{tuple(input.shape)}; got {tuple(target.shape)}")


def host_values(t: Tensor) -> list[int] | None:
    """``[min, max]`` of an int64 tensor when reading them on the host is free, else None.

    Free means a plain CPU tensor outside :func:`torch.compile`: on another device the
    read would wait for it, ``meta`` tensors hold no values, and a ``torch.func``
    transform's wrapper has no storage of its own (the read raises, and is skipped).

    Examples:
        >>> host_values(torch.tensor([3, 1, 2])), host_values(torch.tensor([1], device="meta"))
        ([1, 3], None)
    """
    if type(t) is not Tensor or not t.is_cpu or torch.compiler.is_compiling():
        return None  # a subclass (a fake tensor among them), another device, or tracing
    try:
        low, high = torch.aminmax(t)
        return [int(low), int(high)]
    except RuntimeError:  # a torch.func wrapper: no single value per sample to read
        return None


def _check_index_values(target: Tensor, n_classes: int, ignore_index: int) -> bool:
    """Every int64 ``target`` value is a class in ``[0, C)`` or ``ignore_index`` (where readable).

    Returns True when the values were read and none of them is ``ignore_index``.
    """
    bounds = host_values(target)
    if bounds is None:
        return False
    if bounds[0] >= 0 and bounds[1] < n_classes:
        return not bounds[0] <= ignore_index <= bounds[1]
    bad = ((target < 0) | (target >= n_classes)) & (target != ignore_index)
    if bool(bad.any()):
        value = int(target[bad].flatten()[0])
        classes = f"in [0, {n_classes - 1}]" if n_classes else "(there are none: C = 0)"
        raise IndexError(f"target values must be class indices {classes} "
                         f"or ignore_index={ignore_index}; got {value}")
    return False


def _check_probabilities(target: Tensor, ignore_index: int) -> None:
    if not target.is_floating_point():
        raise ArgumentTypeError(
            "a target with the input's shape holds class probabilities and must be "
            f"floating point; got dtype {target.dtype}")
    if ignore_index >= 0:
        raise ArgumentValueError("ignore_index is not supported with class-probability "
                                 f"targets; got ignore_index={ignore_index}")


def require_scalar_reduction(fn: str, reduction: str) -> None:
    """Refuse ``'none'`` where a function returns a scalar loss and its gradient.

    Examples:
        >>> require_scalar_reduction("f", "none")
        Traceback (most recent call last):
            ...
        ValueError: f: reduction must be 'mean' or 'sum' (a scalar loss); got 'none'
    """
    if reduction == "none":
        raise ValueError(f"{fn}: reduction must be 'mean' or 'sum' (a scalar loss); got 'none'")


def no_target_grad(fn: str, target: Tensor, weight: Tensor | None) -> None:
    """Refuse a ``target`` or ``weight`` that requires grad while gradients are recorded.

    Gradients flow to the input only; a silent ``None`` would hide a mistake.
    """
    if not torch.is_grad_enabled():
        return
    for name, t in (("target", target), ("weight", weight)):
        if t is not None and t.requires_grad:
            raise ValueError(
                f"byhand.{fn}: gradients flow to input only; got a {name} that requires grad "
                f"(use torch.nn.functional.{fn} to differentiate with respect to {name})")
