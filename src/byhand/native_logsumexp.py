r"""The log-sum-exp and loss of half-precision logits in one compiled pass, on the CPU.

For rows of ``bfloat16`` or ``float16`` logits :math:`x_{nj}` with targets :math:`y_n`,
:func:`row_losses` forms, in float32,

.. math::

   m_n = \max_j x_{nj}, \qquad s_n = \sum_j e^{x_{nj} - m_n}

and returns :math:`\mathrm{lse}_n = m_n + \log s_n`, the row's loss
:math:`L_n = \log s_n - (x_{n y_n} - m_n)` and their sum :math:`\sum_n L_n` (so that a
``sum`` or ``mean`` needs no further pass). It reads each row once, and once more from
the processor's first-level cache, taking every number to float32 as it is read.
PyTorch's CPU operators need five passes over a block of logits for the same numbers
(to float32, the maximum, the subtraction, the exponential, the sum); its one fused
pass, ``log_softmax``, returns half precision on the CPU, and a log-sum-exp rounded to
bfloat16 is off by up to 0.03 at :math:`\mathrm{lse} = 8`.

The loop is the C file ``native_logsumexp.c`` beside this module: an OpenMP loop over the
rows (on :func:`torch.get_num_threads` threads) and SIMD loops over the classes, with
the exponential written as a polynomial so that the compiler can vectorize it. It is
compiled the first time it is needed, by the machine's C compiler (``$CC``, or ``cc``),
for the processor it runs on (``-march=native``), in a temporary directory that is
removed once the library is loaded. :func:`available` is False, and
:func:`byhand.class_blocks.loss_only` uses PyTorch's operators, where no compiler
builds it, on Windows, and on processors other than x86-64, where its speed has not
been measured. The C file also refuses to compile for an x86-64 processor without AVX2:
there the exponential does not vectorize, and the loop is slower than PyTorch's passes.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from .errors import ArgumentTypeError, ArgumentValueError

__all__ = ["applies", "available", "row_losses"]

_SOURCE = Path(__file__).with_name("native_logsumexp.c")

#: The C function for each dtype of logits.
_FUNCTIONS = {torch.bfloat16: "row_losses_bfloat16", torch.float16: "row_losses_float16"}

#: Compiler flags, tried in order: wide vectors and threads, then threads, then neither.
_FLAG_SETS = (("-march=native", "-mprefer-vector-width=512", "-fopenmp"),
              ("-march=native", "-fopenmp"),
              ("-march=native", "-fopenmp-simd"))

_ARGUMENT_TYPES = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                   ctypes.c_int]


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The compiled loop, or None where it cannot be built (see the module's text)."""
    if sys.platform == "win32" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    command = shlex.split(os.environ.get("CC") or "cc")
    if not command or shutil.which(command[0]) is None:
        return None
    with tempfile.TemporaryDirectory(prefix="byhand-") as folder:
        built = Path(folder) / "native_logsumexp.so"
        for flags in _FLAG_SETS:
            try:
                done = subprocess.run(
                    [*command, "-O3", "-fno-math-errno", "-fPIC", "-shared", *flags,
                     str(_SOURCE), "-o", str(built)],
                    capture_output=True, timeout=120, check=False)
                if done.returncode == 0:
                    return _bind(ctypes.CDLL(str(built)))
            except (OSError, subprocess.SubprocessError):
                continue
    return None


def _bind(library: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the argument types of every function the library holds."""
    for name in _FUNCTIONS.values():
        if hasattr(library, name):
            function = getattr(library, name)
            function.argtypes = _ARGUMENT_TYPES
            function.restype = ctypes.c_double
    return library


def _function(dtype: torch.dtype) -> Callable[..., float] | None:
    """The compiled function for logits of ``dtype``, or None."""
    library, name = _library(), _FUNCTIONS.get(dtype)
    if library is None or name is None or not hasattr(library, name):
        return None
    function: Callable[..., float] = getattr(library, name)
    return function


def available(dtype: torch.dtype = torch.bfloat16) -> bool:
    """Whether the compiled loop for logits of ``dtype`` is built (compiling it if not yet).

    Examples:
        >>> available(torch.float32)
        False
    """
    return _function(dtype) is not None


def applies(x: Tensor) -> bool:
    """Whether :func:`row_losses` takes the logits of ``x`` (their factor, or themselves):
    half precision on the CPU, with real storage (a plain tensor or parameter, no
    :func:`torch.compile` tracing, no :mod:`torch.func` transform, no dispatch mode such as
    fake tensors), and the loop built for its dtype.

    Examples:
        >>> applies(torch.zeros(2, 3)), applies(torch.zeros(2, 3, device="meta").bfloat16())
        (False, False)
    """
    return (x.dtype in _FUNCTIONS and x.device.type == "cpu"
            and type(x) in (Tensor, torch.nn.Parameter)
            and not torch.compiler.is_compiling()
            and not torch._C._functorch.is_functorch_wrapped_tensor(x)
            and not is_in_torch_dispatch_mode()
            and available(x.dtype))


def row_losses(x: Tensor, y: Tensor, out: Tensor) -> float:
    r"""Write :math:`\mathrm{lse}_n` and :math:`L_n` of the logits ``x`` (``(R, V)``,
    ``bfloat16`` or ``float16``) and targets ``y`` (``R`` class indices, int64) into
    ``out[0]`` and ``out[1]`` (float32, ``(2, R)``, each row contiguous); return
    :math:`\sum_n L_n`, added in float64 in the order of the rows. A target
    outside ``[0, V)`` gives a NaN loss; a row whose maximum is :math:`\pm\infty` or NaN
    gives NaN for both, as :func:`torch.log_softmax` does.

    Examples:
        >>> x = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.bfloat16)
        >>> out = torch.empty(2, 1)
        >>> if applies(x):  # the loop built on this machine
        ...     total = row_losses(x, torch.tensor([2]), out)
        ...     print(out.squeeze(1), torch.logsumexp(x.float(), 1), round(total, 4))
        tensor([2.4076, 0.4076]) tensor([2.4076]) 0.4076
    """
    function = _function(x.dtype)
    if function is None or x.dim() != 2 or not x.is_cpu:
        raise ArgumentTypeError(f"row_losses: x must be 2-D bfloat16 or float16 on the CPU "
                                f"with the loop built; got {x.dtype}, shape {tuple(x.shape)}, "
                                f"on {x.device}")
    rows = x.shape[0]
    if y.dtype != torch.int64 or y.shape[0] != rows or y.numel() != rows:
        raise ArgumentValueError(f"row_losses: y must hold {rows} int64 class indices; got "
                                 f"{y.dtype}, shape {tuple(y.shape)}")
    if out.dtype != torch.float32 or out.shape[:2] != (2, rows) or out.numel() != 2 * rows \
            or (rows > 1 and out.stride(1) != 1):
        raise ArgumentValueError(f"row_losses: out must be float32 of shape (2, {rows}) with "
                                 f"contiguous rows; got {out.dtype}, shape {tuple(out.shape)}")
    if x.shape[1] > 1 and x.stride(1) != 1:
        x = x.contiguous()
    total: float = function(x.data_ptr(), rows, x.shape[1], x.stride(0), y.data_ptr(),
                            y.stride(0), out.data_ptr(), out.stride(0), torch.get_num_threads())
    return total
