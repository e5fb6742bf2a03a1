"""Error of float16 and bfloat16 softmax, log-softmax, logsumexp and cross-entropy, PyTorch's and ours.

Seeded logits :math:`x = \\sigma z` (:math:`z` standard normal) are rounded to the half
dtype; that rounded tensor is the input of both sides. The reference is the same
function evaluated in float64 on the rounded values (so only the computation's own
rounding is measured, not the input's). For every function, pass and dtype the script
reports the largest and the mean absolute difference to that reference, PyTorch's
(``torch.softmax`` ..., ``F.cross_entropy`` with autograd for the backward) and byhand's
(``byhand.softmax`` ... and the hand-written ``*_backward``), and their ratio
``byhand_over_pytorch_max`` (at most 1: ours is no worse).

Passes: ``forward`` is the function's value (per-sample losses, ``reduction="none"``, for
cross-entropy); ``backward`` is the input gradient for a seeded upstream gradient
rounded to the dtype (``reduction="sum"`` for cross-entropy, whose gradient is then
:math:`s - \\operatorname{onehot}(y)`, on the scale of a probability).

It prints exactly one JSON line on stdout. Run ``python benchmarks/half_precision.py``
(``--quick`` for a smaller problem; ``--n``, ``--c``, ``--scale``, ``--seed`` to change it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

import byhand
from byhand import losses
from byhand.device import describe_machine

DTYPES = (torch.float16, torch.bfloat16)

# name -> (PyTorch's forward, ours, our backward); each forward takes (x, y) and reduces dim 1
Forward = Callable[[Tensor, Tensor], Tensor]
FUNCTIONS: dict[str, tuple[Forward, Forward, Callable[[Tensor, Tensor, Tensor], Tensor]]] = {
    "softmax": (lambda x, y: torch.softmax(x, 1), lambda x, y: byhand.softmax(x, 1),
                lambda g, x, y: byhand.softmax_backward(g, x, 1)),
    "log_softmax": (lambda x, y: torch.log_softmax(x, 1), lambda x, y: byhand.log_softmax(x, 1),
                    lambda g, x, y: byhand.log_softmax_backward(g, x, 1)),
    "logsumexp": (lambda x, y: torch.logsumexp(x, 1), lambda x, y: byhand.logsumexp(x, 1),
                  lambda g, x, y: byhand.logsumexp_backward(g, x, 1)),
    "cross_entropy": (lambda x, y: F.cross_entropy(x, y, reduction="none"),
                      lambda x, y: losses.cross_entropy(x, y, reduction="none"),
                      lambda g, x, y: losses.cross_entropy_backward(g, x, y, reduction="sum")),
}


def _autograd(fn: Forward, x: Tensor, y: Tensor, g: Tensor, name: str) -> Tensor:
    """PyTorch's input gradient of ``fn`` (cross-entropy summed) for upstream ``g``."""
    leaf = x.detach().clone().requires_grad_(True)
    if name == "cross_entropy":
        F.cross_entropy(leaf, y, reduction="sum").backward(g)
    else:
        fn(leaf, y).backward(g)
    assert leaf.grad is not None
    return leaf.grad


def _errors(result: Tensor, exact: Tensor) -> tuple[float, float]:
    diff = (result.double() - exact).abs()
    return float(diff.max()), float(diff.mean())


def measure(dtype: torch.dtype, n: int, c: int, scale: float, seed: int) -> list[dict[str, object]]:
    """Max and mean absolute error against float64 of both sides, for every function and pass."""
    gen = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(n, c, generator=gen, dtype=torch.float64)).to(dtype)
    y = torch.randint(0, c, (n,), generator=gen)
    exact_x = x.double()
    rows = []
    for name, (reference, ours, ours_backward) in FUNCTIONS.items():
        out_shape = reference(exact_x, y).shape
        g = torch.randn(out_shape if name != "cross_entropy" else (), generator=gen,
                        dtype=torch.float64).to(dtype)
        passes = {
            "forward": (reference(x, y), ours(x, y), reference(exact_x, y)),
            "backward": (_autograd(reference, x, y, g, name), ours_backward(g, x, y),
                         _autograd(reference, exact_x, y, g.double(), name)),
        }
        for pass_name, (theirs, mine, exact) in passes.items():
            assert theirs.dtype == mine.dtype == dtype, (name, pass_name, theirs.dtype, mine.dtype)
            t_max, t_mean = _errors(theirs, exact)
            o_max, o_mean = _errors(mine, exact)
            rows.append({
                "function": name, "pass": pass_name, "dtype": str(dtype).removeprefix("torch."),
                "pytorch_max_abs": t_max, "pytorch_mean_abs": t_mean,
                "byhand_max_abs": o_max, "byhand_mean_abs": o_mean,
                "byhand_over_pytorch_max": o_max / t_max if t_max else None,
            })
    return rows


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller problem (256 x 100)")
    parser.add_argument("--n", type=int, default=1024, help="rows (samples)")
    parser.add_argument("--c", type=int, default=1000, help="columns (classes)")
    parser.add_argument("--scale", type=float, default=4.0, help="standard deviation of logits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n, c = (256, 100) if args.quick else (args.n, args.c)
    report = {
        "benchmark": "half_precision", "n": n, "c": c, "scale": args.scale, "seed": args.seed,
        "results": [row for dtype in DTYPES
                    for row in measure(dtype, n, c, args.scale, args.seed)],
        "machine": describe_machine("cpu"),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
