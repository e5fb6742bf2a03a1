r"""The Triton kernel of :mod:`byhand.kernels`: cross-entropy forward and backward in one pass.

This module imports Triton; :mod:`byhand.kernels` imports it only on the first call that
needs it. One program handles one row :math:`n` of the logits :math:`x_{nj}`, walking over
the classes in blocks of ``BLOCK`` columns, twice.

Sweep 1, the online log-sum-exp of chapter 10: for each block :math:`B` it updates the
running maximum and the running sum of exponentials shifted by it,

.. math::

   \begin{aligned}
   m' &= \max\big(m, \max_{k \in B} x_{nk}\big), \\
   r' &= r\, e^{m - m'} + \sum_{k \in B} e^{x_{nk} - m'},
   \end{aligned}

from :math:`m = -\infty`, :math:`r = 0`, and ends with
:math:`\mathrm{lse}_n = m + \log r`. It also reads the target logit
:math:`x_{n y_n}`, before anything is written.

Sweep 2 writes, over the same block of the same row, the gradient of the loss at
:math:`x_{nj}` for an upstream gradient of 1,

.. math::

   \begin{aligned}
   \frac{\partial L}{\partial x_{nj}} &= \frac{s_{nj} T_n - \tilde t_{nj}}{D}, \\
   s_{nj} &= e^{x_{nj} - \mathrm{lse}_n}, \\
   T_n &= \sum_k \tilde t_{nk},
   \end{aligned}

with the effective target
:math:`\tilde t_{nj} = \mu_n\big[(1-\varepsilon)\, w_{y_n} \delta_{j y_n} + \tfrac{\varepsilon}{C} w_j\big]`
(:math:`\mu_n` is 0 for an ignored row, :math:`w_j` the class weights, :math:`\varepsilon`
the label smoothing) and :math:`D` the mean's denominator :math:`\sum_n \mu_n w_{y_n}`
(1 for ``sum`` and ``none``). It also accumulates the row's loss

.. math::

   \begin{aligned}
   L_n &= \mu_n\Big[(1-\varepsilon)\, w_{y_n} (\mathrm{lse}_n - x_{n y_n}) \\
       &\qquad + \frac{\varepsilon}{C} \sum_j w_j (\mathrm{lse}_n - x_{nj})\Big].
   \end{aligned}

Both formulas are evaluated with :math:`\mathrm{lse}_n - x_{nj} = \log r - (x_{nj} - m)`,
so that a huge :math:`m` (say :math:`10^{30}`) cannot round :math:`\log r` away.

Each element is read before it is written, by the only program that touches its row, so
the gradient may be written over the logits themselves (``grad`` and ``input`` the same
tensor). Loads are in the input's dtype, all arithmetic in float32, and the gradient is
rounded once to the gradient buffer's dtype when it is stored.
"""

from __future__ import annotations

import numpy as np
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["INTERPRETED", "cross_entropy_kernel", "launch"]


@triton.jit
def cross_entropy_kernel(
    X, stride_x, GRAD, stride_g, Y, W, SCALE, LOSS, TRACE,
    n_classes, ignore_index, label_smoothing,
    HAS_WEIGHT: tl.constexpr, HAS_SMOOTHING: tl.constexpr, HAS_SCALE: tl.constexpr,
    WRITE_TRACE: tl.constexpr, BLOCK: tl.constexpr,
):
    n = tl.program_id(0).to(tl.int64)
    x_row = X + n * stride_x
    g_row = GRAD + n * stride_g
    y = tl.load(Y + n)
    counted = y != ignore_index                     # mu_n
    in_range = (y >= 0) & (y < n_classes)
    y_safe = tl.where(in_range, y, 0)
    x_y = tl.load(x_row + y_safe).to(tl.float32)    # read before sweep 2 overwrites it
    n_blocks = tl.cdiv(n_classes, BLOCK)

    # Sweep 1: running max m and running sum r (the online log-sum-exp).
    m = tl.full((), float("-inf"), tl.float32)
    r = tl.zeros((), tl.float32)
    sum_w = tl.zeros((), tl.float32)
    for b in range(0, n_blocks):
        cols = b * BLOCK + tl.arange(0, BLOCK)
        inside = cols < n_classes
        x = tl.load(x_row + cols, mask=inside, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)   # an all -inf prefix: r stays 0
        r = r * tl.exp(m - shift) + tl.sum(tl.exp(x - shift), axis=0)
        m = m_new
        if HAS_SMOOTHING and HAS_WEIGHT:
            sum_w += tl.sum(tl.load(W + cols, mask=inside, other=0.0).to(tl.float32), axis=0)
        if WRITE_TRACE:
            tl.store(TRACE + (n * n_blocks + b) * 2, m)
            tl.store(TRACE + (n * n_blocks + b) * 2 + 1, r)
    log_r = tl.log(r)          # lse_n = m + log r; the loss and softmax use x - m and log r apart,
                               # so a huge m does not swallow log r (as x - lse would in float32)

    # The target's weight w_{y_n}, T_n = sum_k t~_nk, and 1/D.
    if HAS_WEIGHT:
        w_y = tl.load(W + y_safe).to(tl.float32)
    else:
        w_y = tl.full((), 1.0, tl.float32)
    on_target = (1.0 - label_smoothing) * w_y
    per_class = label_smoothing / n_classes
    if HAS_SMOOTHING:
        if HAS_WEIGHT:
            total = on_target + per_class * sum_w
        else:
            total = on_target + label_smoothing
    else:
        total = on_target
    if HAS_SCALE:
        scale = tl.load(SCALE).to(tl.float32)
    else:
        scale = tl.full((), 1.0, tl.float32)
    poison = counted & (in_range == 0)             # a target outside [0, C): nan, not a stray read

    # Sweep 2: the gradient (s T - t~)/D over the same block, and the smoothing sum.
    smooth = tl.zeros((), tl.float32)
    for b in range(0, n_blocks):
        cols = b * BLOCK + tl.arange(0, BLOCK)
        inside = cols < n_classes
        x = tl.load(x_row + cols, mask=inside, other=0.0).to(tl.float32)
        s = tl.exp((x - m) - log_r)
        t = tl.where(cols == y_safe, on_target, 0.0)
        if HAS_SMOOTHING:
            if HAS_WEIGHT:
                w = tl.load(W + cols, mask=inside, other=0.0).to(tl.float32)
            else:
                w = tl.full((BLOCK,), 1.0, tl.float32)
            t += per_class * w
            smooth += tl.sum(tl.where(inside, w * (log_r - (x - m)), 0.0), axis=0)
        g = tl.where(counted, (s * total - t) * scale, 0.0)
        g = tl.where(poison, float("nan"), g)
        tl.store(g_row + cols, g.to(GRAD.dtype.element_ty), mask=inside)

    loss = on_target * (log_r - (x_y - m))
    if HAS_SMOOTHING:
        loss += per_class * smooth
    loss = tl.where(counted, loss, 0.0)
    loss = tl.where(poison, float("nan"), loss)
    tl.store(LOSS + n, loss)


#: Whether this module's kernel runs in Triton's interpreter (``TRITON_INTERPRET=1`` was set
#: when Triton was first imported), in which case it takes CPU tensors and runs them with NumPy.
INTERPRETED: bool = not isinstance(cross_entropy_kernel, triton.runtime.jit.JITFunction)


def launch(input: Tensor, grad: Tensor, target: Tensor, weight: Tensor | None, scale: Tensor | None,
           loss_rows: Tensor, trace: Tensor | None, ignore_index: int, label_smoothing: float,
           block_size: int) -> None:
    """Run :func:`cross_entropy_kernel` on ``input`` (N, C), one program per row.

    Writes the gradient into ``grad`` (which may be ``input`` itself) and the per-row losses
    into ``loss_rows`` (float32, N). ``scale`` holds :math:`1/D` (one float32) or is ``None``
    for 1; ``trace``, if given, receives each row's :math:`(m, r)` after each block of sweep 1,
    shape (N, number of blocks, 2), float32.
    """
    n_rows, n_classes = input.shape
    if n_rows == 0:
        return
    dummy = loss_rows  # stands in for the pointers a variant does not read
    num_warps = 4 if block_size <= 1024 else 8 if block_size <= 4096 else 16
    with np.errstate(all="ignore"):  # the interpreter's NumPy: inf - inf is meant to be nan here
        cross_entropy_kernel[(n_rows,)](
            input, input.stride(0), grad, grad.stride(0), target,
            dummy if weight is None else weight, dummy if scale is None else scale,
            loss_rows, dummy if trace is None else trace,
            n_classes, ignore_index, float(label_smoothing),
            HAS_WEIGHT=weight is not None, HAS_SMOOTHING=label_smoothing > 0.0,
            HAS_SCALE=scale is not None, WRITE_TRACE=trace is not None, BLOCK=block_size,
            num_warps=num_warps,
        )
