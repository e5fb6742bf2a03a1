r"""Cross-entropy forward and backward in one Triton kernel, as a drop-in for ``F.cross_entropy``.

Notation (the book's): samples :math:`n`, classes :math:`i, j, k`; logits :math:`x_{nj}`;
class-index targets :math:`y_n`; the ignore mask :math:`\mu_n` (0 where :math:`y_n` is
``ignore_index``, else 1); class weights :math:`w_j` (all 1 without ``weight``); label
smoothing :math:`\varepsilon` over :math:`C` classes; the effective target

.. math::

   \begin{aligned}
   \tilde t_{nj} &= \mu_n\Big[(1-\varepsilon)\, w_{y_n} \delta_{j y_n} + \frac{\varepsilon}{C} w_j\Big], \\
   T_n &= \sum_k \tilde t_{nk};
   \end{aligned}

the denominator :math:`D = \sum_n \mu_n w_{y_n}` for ``mean`` (1 for ``sum`` and ``none``);
and :math:`G` the upstream gradient. The loss of a row is
:math:`L_n = \sum_k \tilde t_{nk} (\mathrm{lse}_n - x_{nk})`, and the kernel writes

.. math::

   \frac{\partial L}{\partial x_{nj}} = \frac{s_{nj} T_n - \tilde t_{nj}}{D}

during the forward, over the logits when ``inplace=True``. The backward is then one
multiply: :math:`G \cdot \partial L/\partial x_{nj}` with a scalar :math:`G` for ``mean`` and
``sum``, or :math:`G_n \cdot \partial L_n/\partial x_{nj}` row by row for ``none``.

Where it runs. On CUDA tensors, compiled by Triton. On CPU tensors only in Triton's
interpreter, which runs the same kernel with NumPy: set the environment variable
``TRITON_INTERPRET=1`` *before Triton is first imported* (in the shell, or in
``os.environ`` at the top of a script or notebook, before anything imports ``triton``;
Triton decides at import time whether its own ``tl.max``/``tl.sum`` are interpreted).
Triton is an optional dependency (``pip install 'byhand[triton]'``), imported on the first
call, never by ``import byhand``.

What it covers. Class-index targets with inputs of shape ``(N, C)`` or ``(C,)``; every option
of :func:`byhand.cross_entropy` for them (``weight``, ``ignore_index``, ``reduction``,
``label_smoothing``); float32, bfloat16 and float16 inputs, computed in float32 and
rounded once. Class-probability targets and ``(N, C, d1, ...)`` inputs are refused with
a pointer to :func:`byhand.cross_entropy`.

Registered ops. ``byhand::cross_entropy`` (functional: returns the loss and a new gradient
buffer) carries the autograd formula and a fake (meta) implementation, so autograd and
``torch.compile`` see one op; ``byhand::cross_entropy_`` writes the gradient over its input
and is used for ``inplace=True`` outside ``torch.compile`` (a compiled graph is functional, so
there the functional op runs).
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal, NamedTuple, cast

import torch
from torch import Tensor

from ..cross_entropy_checks import validate
from ..cross_entropy_core import CrossEntropyOptions
from ..errors import ArgumentTypeError, ArgumentValueError, UnsupportedDTypeError

__all__ = ["KernelUnavailableError", "check_options", "cross_entropy",
           "cross_entropy_forward_backward", "default_block_size"]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


class KernelUnavailableError(RuntimeError):
    """The kernel cannot run here: Triton is missing, or a CPU tensor without the interpreter."""


def check_options(fn: str, input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                  reduction: str, label_smoothing: float) -> None:
    """Validate the arguments of :func:`cross_entropy` (errors prefixed by ``fn``).

    What only the kernel requires is checked here (float32, bfloat16 or float16 input
    of shape ``(N, C)`` or ``(C,)``, int64 class indices, every tensor on the input's
    device); the options themselves go through the package's one cross-entropy check,
    :func:`byhand.cross_entropy_checks.validate`, with a
    :class:`~byhand.cross_entropy_core.CrossEntropyOptions`. Raises
    :class:`~byhand.errors.ArgumentValueError`, :class:`~byhand.errors.ArgumentTypeError`,
    :class:`~byhand.errors.UnsupportedDTypeError` or :class:`IndexError`, like
    :func:`byhand.cross_entropy`.

    Examples:
        >>> check_options("f", torch.zeros(2, 3), torch.tensor([0, 5]), None, -100, "mean", 0.0)
        Traceback (most recent call last):
            ...
        IndexError: f: target values must be class indices in [0, 2] or ignore_index=-100; got 5
    """
    if input.dtype not in _DTYPES:
        raise UnsupportedDTypeError(
            f"{fn}: the kernel computes in float32 and takes float32, bfloat16 or float16 input; "
            f"got {input.dtype} (use byhand.cross_entropy for float64)")
    if target.is_floating_point():
        raise ArgumentTypeError(
            f"{fn}: the kernel takes class-index targets only; got a {target.dtype} target "
            "(class probabilities: use byhand.cross_entropy)")
    if target.dtype != torch.int64:
        raise ArgumentTypeError(f"{fn}: target must be int64 class indices; got {target.dtype}")
    if input.dim() not in (1, 2):
        raise ArgumentValueError(
            f"{fn}: the kernel takes input of shape (N, C) or (C,); got {tuple(input.shape)} "
            "(K-dimensional inputs: use byhand.cross_entropy)")
    for name, t in (("target", target), ("weight", weight)):
        if t is not None and t.device != input.device:
            raise ArgumentValueError(f"{fn}: {name} is on {t.device}, input on {input.device}")
    validate(fn, input, target, _options(weight, ignore_index, reduction, label_smoothing),
             probabilities=False)


def _options(weight: Tensor | None, ignore_index: int, reduction: str,
             label_smoothing: float) -> CrossEntropyOptions:
    """The loss's options from the flat arguments a call (or a registered op) receives."""
    return CrossEntropyOptions(weight, ignore_index, label_smoothing, cast(Reduction, reduction))


class _Launch(NamedTuple):
    """How one launch writes the gradient: over the input (``inplace``) or into a new
    buffer, ``block_size`` columns per block (None: :func:`default_block_size`), and the
    optional ``trace`` of the running maximum and sum."""

    inplace: bool = False
    block_size: int | None = None
    trace: Tensor | None = None


def _triton_module() -> Any:
    """Import the kernel module (and so Triton) on first use, with errors that say what is missing."""
    try:
        from . import triton_cross_entropy
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] == "triton":
            raise KernelUnavailableError(
                "byhand.kernels needs Triton, which is not installed: "
                "pip install 'byhand[triton]' (or pip install triton)") from err
        raise
    return triton_cross_entropy


def _check_device(fn: str, input: Tensor) -> Any:
    module = _triton_module()
    if input.device.type == "cpu" and not module.INTERPRETED:
        late = os.environ.get("TRITON_INTERPRET") == "1"
        raise KernelUnavailableError(
            f"{fn}: a CPU tensor runs only in Triton's interpreter, and "
            + ("TRITON_INTERPRET=1 was set after Triton was imported; set it before the first "
               "import of triton (at the top of the script or notebook)" if late else
               "TRITON_INTERPRET=1 is not set; set it before Triton is first imported, or pass a "
               "CUDA tensor"))
    if input.device.type not in ("cpu", "cuda"):
        raise KernelUnavailableError(f"{fn}: the kernel runs on CUDA tensors (or CPU tensors in "
                                     f"the interpreter); got a tensor on {input.device}")
    return module


def default_block_size(n_classes: int, interpreted: bool = False) -> int:
    """Columns per block: the next power of two of ``n_classes``, at most 4,096 on a GPU (1,024 in
    the interpreter), so that a block of float32 fits the registers of one program.

    Examples:
        >>> default_block_size(10), default_block_size(128_256), default_block_size(3000, True)
        (16, 4096, 1024)
    """
    cap = 1024 if interpreted else 4096
    return max(16, min(cap, 1 << max(0, n_classes - 1).bit_length()))


def _run(input: Tensor, target: Tensor, options: CrossEntropyOptions,
         launch: _Launch) -> tuple[Tensor, Tensor]:
    """The loss and the gradient for an upstream gradient of 1, from one kernel launch (2-D input)."""
    module = _check_device("byhand.kernels.cross_entropy", input)
    n_classes = input.shape[1]
    if input.stride(1) != 1:
        if launch.inplace:
            raise ArgumentValueError("byhand.kernels.cross_entropy: inplace=True needs rows whose "
                                     f"classes are contiguous; got strides {input.stride()}")
        input = input.contiguous()
    grad = input if launch.inplace else torch.empty_like(input)
    target = target.contiguous()
    weight = None if options.weight is None else options.weight.contiguous()
    ignore_index, reduction = options.ignore_index, options.reduction
    scale = None
    if reduction == "mean":   # 1/D, computed on the device, never read on the host
        counted = target != ignore_index
        if weight is None:
            denominator = counted.sum(dtype=torch.float32)
        else:
            w_y = weight[torch.where(counted, target, 0)].float()
            denominator = torch.where(counted, w_y, 0.0).sum()
        scale = denominator.reciprocal().reshape(1)
    loss_rows = torch.empty(input.shape[0], dtype=torch.float32, device=input.device)
    block = launch.block_size or default_block_size(n_classes, module.INTERPRETED)
    module.launch(input, grad, target, weight, scale, loss_rows, launch.trace, ignore_index,
                  options.label_smoothing, block)
    if reduction == "none":
        loss = loss_rows.to(input.dtype)
    elif reduction == "sum":
        loss = loss_rows.sum().to(input.dtype)
    else:
        assert scale is not None
        loss = (loss_rows.sum() * scale[0]).to(input.dtype)
    return loss, grad


def cross_entropy_forward_backward(
    input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
    reduction: Reduction = "mean", label_smoothing: float = 0.0, *, inplace: bool = False,
    block_size: int | None = None, trace: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The loss and :math:`\partial L/\partial x_{nj}` (for :math:`G = 1`) from one kernel launch.

    No autograd: this is the kernel as a pure function, like
    :func:`byhand.cross_entropy_forward_backward`. For ``reduction="none"`` the gradient's
    row :math:`n` is :math:`\partial L_n/\partial x_{nj}`. With ``inplace=True`` the
    gradient is written over ``input`` and returned as ``input`` itself.

    ``block_size`` sets the columns per block (a power of two, at least 16; the default is
    :func:`default_block_size`). ``trace``, a float32 tensor of shape
    ``(N, ceil(C / block_size), 2)``, receives every row's running maximum and running
    sum after each block of the first sweep.

    Examples:
        >>> x = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
        >>> y = torch.tensor([0, 1])
        >>> loss, grad = cross_entropy_forward_backward(x, y)  # doctest: +SKIP
        >>> torch.allclose(grad, torch.func.grad(torch.nn.functional.cross_entropy)(x, y))  # doctest: +SKIP
        True
    """
    fn = "byhand.kernels.cross_entropy_forward_backward"
    check_options(fn, input, target, weight, ignore_index, reduction, label_smoothing)
    if block_size is not None and (block_size < 16 or block_size & (block_size - 1)):
        raise ArgumentValueError(f"{fn}: block_size must be a power of two, at least 16; got {block_size}")
    unbatched = input.dim() == 1
    if unbatched and trace is not None:
        raise ArgumentValueError(f"{fn}: trace needs a batched (N, C) input")
    x2, y2 = (input.unsqueeze(0), target.unsqueeze(0)) if unbatched else (input, target)
    if trace is not None:
        blocks = math.ceil(x2.shape[1] / (block_size or default_block_size(
            x2.shape[1], _triton_module().INTERPRETED)))
        if trace.shape != (x2.shape[0], blocks, 2) or trace.dtype != torch.float32:
            raise ArgumentValueError(f"{fn}: trace must be float32 of shape ({x2.shape[0]}, {blocks}, 2)")
    loss, grad = _run(x2, y2, _options(weight, ignore_index, reduction, label_smoothing),
                      _Launch(inplace, block_size, trace))
    if unbatched:
        return (loss[0] if reduction == "none" else loss), grad[0]
    return loss, grad


# ---------------------------------------------------------------------------------------
# The registered ops: what autograd and torch.compile see.

@torch.library.custom_op("byhand::cross_entropy", mutates_args=())
def _cross_entropy_op(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                      reduction: str, label_smoothing: float) -> tuple[Tensor, Tensor]:
    """Functional op: the loss and a new buffer holding the gradient for G = 1."""
    return _run(input, target, _options(weight, ignore_index, reduction, label_smoothing),
                _Launch())


@torch.library.custom_op("byhand::cross_entropy_", mutates_args=("input",))
def _cross_entropy_inplace_op(input: Tensor, target: Tensor, weight: Tensor | None,
                              ignore_index: int, reduction: str, label_smoothing: float) -> Tensor:
    """In-place op: returns the loss and leaves the gradient for G = 1 in ``input``."""
    loss, _ = _run(input, target, _options(weight, ignore_index, reduction, label_smoothing),
                   _Launch(inplace=True))
    return loss


def _fake_loss(input: Tensor, reduction: str) -> Tensor:
    shape = (input.shape[0],) if reduction == "none" else ()
    return input.new_empty(shape)


@_cross_entropy_op.register_fake
def _(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: str,
      label_smoothing: float) -> tuple[Tensor, Tensor]:
    return _fake_loss(input, reduction), torch.empty_like(input)


@_cross_entropy_inplace_op.register_fake
def _(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: str,
      label_smoothing: float) -> Tensor:
    return _fake_loss(input, reduction)


def _upstream(grad_loss: Tensor, reduction: str) -> Tensor:
    """G as a factor of the stored gradient: a scalar, or one number per row for ``none``."""
    return grad_loss.unsqueeze(1) if reduction == "none" else grad_loss


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])
    ctx.reduction = inputs[4]


def _backward(ctx: Any, grad_loss: Tensor, _grad_of_grad: Tensor | None) -> tuple[Tensor | None, ...]:
    (stored,) = ctx.saved_tensors
    return _upstream(grad_loss, ctx.reduction) * stored, None, None, None, None, None


_cross_entropy_op.register_autograd(_backward, setup_context=_setup_context)


class _InPlace(torch.autograd.Function):
    """Autograd for ``inplace=True``: the gradient lives in the caller's logits buffer.

    The mutation bumps the logits' version counter, so a node that saved the logits (a
    softcap's ``tanh``, say) refuses its backward with autograd's "modified by an inplace
    operation" error instead of computing with the gradient. The backward multiplies the
    stored gradient by G in place, so it allocates nothing and runs once.
    """

    @staticmethod
    def forward(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                reduction: str, label_smoothing: float) -> Tensor:
        loss: Tensor = torch.ops.byhand.cross_entropy_(input, target, weight, ignore_index,
                                                       reduction, label_smoothing)
        return loss

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.reduction = inputs[4]
        ctx.used = False

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        if ctx.used:
            raise RuntimeError("byhand.kernels.cross_entropy(inplace=True): the backward multiplies "
                               "the stored gradient in place and can run only once")
        ctx.used = True
        (stored,) = ctx.saved_tensors
        return stored.mul_(_upstream(grad_loss, ctx.reduction)), None, None, None, None, None


def cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
    reduction: Reduction = "mean", label_smoothing: float = 0.0, *, inplace: bool = False,
) -> Tensor:
    r"""Drop-in for :func:`torch.nn.functional.cross_entropy` (class-index targets), in one kernel.

    The forward computes the loss and :math:`(s_{nj} T_n - \tilde t_{nj})/D` in one launch;
    ``loss.backward()`` multiplies that by the upstream gradient :math:`G` (a scalar for
    ``mean``/``sum``, :math:`G_n` per row for ``none``). With ``inplace=True`` the gradient
    is written over ``input``: the logits are gone after the call (use it when nothing else
    needs them, as for the output of the last linear layer), and the call holds no second
    logits-sized buffer. ``inplace=False`` (the default, as in PyTorch) leaves ``input``
    alone and pays for one new buffer of its size. Under ``torch.compile`` the functional op
    always runs.

    Gradients flow to ``input`` only. Runs on CUDA tensors, or on CPU tensors when
    ``TRITON_INTERPRET=1`` was set before Triton was imported; raises
    :class:`KernelUnavailableError` otherwise.

    Examples:
        >>> import os; os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported  # doctest: +SKIP
        >>> x = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
        >>> cross_entropy(x, torch.tensor([0, 1])).backward()  # doctest: +SKIP
    """
    fn = "byhand.kernels.cross_entropy"
    check_options(fn, input, target, weight, ignore_index, reduction, label_smoothing)
    if torch.is_grad_enabled() and weight is not None and weight.requires_grad:
        raise ArgumentValueError(f"{fn}: gradients flow to input only; got a weight that requires grad")
    unbatched = input.dim() == 1
    x2, y2 = (input.unsqueeze(0), target.unsqueeze(0)) if unbatched else (input, target)
    if inplace and not torch.compiler.is_compiling():
        if input.requires_grad and input.is_leaf and torch.is_grad_enabled():
            raise ArgumentValueError(f"{fn}: inplace=True would overwrite a leaf tensor that requires "
                                     "grad; pass inplace=False, or the output of an operation")
        loss = cast(Tensor, _InPlace.apply(  # type: ignore[no-untyped-call]  # unannotated in torch
            x2, y2, weight, ignore_index, reduction, label_smoothing))
    else:
        loss, _ = _cross_entropy_op(x2, y2, weight, ignore_index, reduction, label_smoothing)
    return loss[0] if unbatched and reduction == "none" else loss
