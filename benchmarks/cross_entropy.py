"""Fused cross-entropy forward+backward by hand against ``F.cross_entropy`` + autograd.

``byhand.cross_entropy_forward_backward(x, y)`` returns the mean loss and
:math:`\\partial L/\\partial x = (\\operatorname{softmax}(x) - \\operatorname{onehot}(y))/N`
from one softmax pass whose buffer becomes the gradient. The reference is what a
training loop does with PyTorch: ``F.cross_entropy(x, y).backward()`` on a leaf that
requires grad (its ``.grad`` reset to ``None`` before each call, as
``zero_grad(set_to_none=True)`` does).

For each case (N, C) in float32 on the chosen device the script first checks that both
sides give the same loss and gradient, then reports

* the time per call of each side from ``byhand.timing.interleaved``: the two sides
  timed in alternation with ``torch.utils.benchmark`` (``Timer.blocked_autorange``,
  which calibrates each block by duration and synchronises the accelerator), as
  latency (one call, one synchronisation) and throughput (``--back-to-back`` calls,
  one synchronisation), each as median, quartiles and interquartile range, with the
  load average before and after; ``byhand_over_autograd`` is the ratio of the median
  throughputs (below 1: byhand is faster);
* the same for the forward alone under ``torch.no_grad()``: the drop-in
  ``byhand.cross_entropy`` against ``F.cross_entropy`` (``forward_no_grad``,
  ``forward_ratio`` = byhand / PyTorch);
* the operators each side dispatches per call (``ops_per_call``, counted with a
  ``TorchDispatchMode``): at small sizes a call costs a few microseconds per operator;
* the peak extra memory of one call: the highest number of bytes allocated above what
  was allocated before the call, outputs included. On CUDA from
  ``torch.cuda.max_memory_allocated``; on the CPU from the allocator events that
  ``torch.profiler`` records with ``profile_memory=True`` (every allocation and free,
  summed in time order); ``memory_ratio = byhand / autograd`` (below 1: byhand needs less).

It prints exactly one JSON line on stdout, figures and no verdicts: the reader judges.
Run ``python benchmarks/cross_entropy.py`` (``--quick`` for a smoke run with small sizes
and short rounds, ``--device cpu`` to pick the device instead of ``byhand.pick_device()``,
``--threads N`` to fix the CPU threads).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import byhand
from byhand.device import describe_machine
from byhand.memory import memory_method, peak_bytes
from byhand.timing import interleaved

FULL_CASES = ((128, 10), (512, 10), (8192, 10), (2048, 32768))
QUICK_CASES = ((128, 10), (512, 10), (64, 32768))

Pair = tuple[torch.Tensor, torch.Tensor]


def _make_case(
    n: int, c: int, device: torch.device, seed: int
) -> tuple[Callable[[], Pair], Callable[[], Pair], torch.Tensor]:
    """The two contestants for an (N, C) problem, plus autograd's leaf tensor."""
    gen = torch.Generator().manual_seed(seed)
    logits = (3.0 * torch.randn(n, c, generator=gen)).to(device)
    target = torch.randint(0, c, (n,), generator=gen).to(device)
    leaf = logits.clone().requires_grad_(True)

    def by_hand() -> Pair:
        return byhand.cross_entropy_forward_backward(logits, target)

    def autograd() -> Pair:
        leaf.grad = None
        loss = F.cross_entropy(leaf, target)
        loss.backward()
        assert leaf.grad is not None
        return loss.detach(), leaf.grad

    return by_hand, autograd, leaf


class _OpCounter(TorchDispatchMode):
    """Count the ATen operators dispatched (by kernel name) while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = str(func.overloadpacket.__name__)
        self.ops[name] = self.ops.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def ops_per_call(fn: Callable[[], object]) -> dict[str, Any]:
    """The number of ATen operators one call of ``fn`` dispatches, and which."""
    fn()
    with _OpCounter() as counter:
        fn()
    return {"total": sum(counter.ops.values()), "ops": dict(sorted(counter.ops.items()))}


def _make_case_target(leaf: torch.Tensor, n: int, c: int, seed: int) -> torch.Tensor:
    """The target of :func:`_make_case` again (same seed, same draws)."""
    gen = torch.Generator().manual_seed(seed)
    torch.randn(n, c, generator=gen)
    return torch.randint(0, c, (n,), generator=gen).to(leaf.device)


def _peak_bytes(fn: Callable[[], Pair], device: torch.device, reset: Callable[[], None]) -> int:
    reset()  # free the previous call's gradient outside the measured region
    return peak_bytes(fn, device)


def run_case(
    n: int, c: int, device: torch.device, timing: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Check, time (``timing`` holds ``interleaved``'s keyword arguments) and measure one case."""
    by_hand, autograd, leaf = _make_case(n, c, device, seed)

    # Same numbers first: the benchmark compares two ways to get one result.
    loss_ours, grad_ours = by_hand()
    loss_ref, grad_ref = autograd()
    grad_check = byhand.compare("grad", grad_ours, grad_ref)
    loss_diff = float((loss_ours - loss_ref).abs())
    if not grad_check.close:
        raise AssertionError(f"N={n}, C={c}: byhand and autograd disagree: {grad_check}")
    del loss_ours, grad_ours, loss_ref, grad_ref

    timings = interleaved({"byhand": by_hand, "autograd": autograd}, device=device, **timing)
    logits, target = leaf.detach(), _make_case_target(leaf, n, c, seed)

    def forward_ours() -> torch.Tensor:
        with torch.no_grad():
            return byhand.cross_entropy(logits, target)

    def forward_ref() -> torch.Tensor:
        with torch.no_grad():
            return F.cross_entropy(logits, target)

    forward = interleaved({"byhand": forward_ours, "torch": forward_ref}, device=device,
                          **timing)
    ops = {"byhand": ops_per_call(by_hand), "autograd": ops_per_call(autograd),
           "byhand_forward_no_grad": ops_per_call(forward_ours),
           "torch_forward_no_grad": ops_per_call(forward_ref)}

    def clear_leaf() -> None:
        leaf.grad = None

    peak_ours = max(_peak_bytes(by_hand, device, clear_leaf) for _ in range(2))
    peak_ref = max(_peak_bytes(autograd, device, clear_leaf) for _ in range(2))
    leaf.grad = None

    return {
        "N": n,
        "C": c,
        "dtype": "float32",
        "input_bytes": n * c * 4,
        **timings,
        "byhand_over_autograd": (timings["byhand"]["throughput"]["median_s"]
                                 / timings["autograd"]["throughput"]["median_s"]),
        "forward_no_grad": {k: forward[k] for k in ("byhand", "torch")},
        "forward_ratio": (forward["byhand"]["throughput"]["median_s"]
                          / forward["torch"]["throughput"]["median_s"]),
        "ops_per_call": ops,
        "byhand_peak_bytes": peak_ours,
        "autograd_peak_bytes": peak_ref,
        "memory_ratio": peak_ours / peak_ref if peak_ref else float("nan"),
        "grad_max_abs_diff": grad_check.max_abs_diff,
        "loss_abs_diff": loss_diff,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, two short rounds, 5 calls back to back: a smoke run")
    parser.add_argument("--rounds", type=int, default=10,
                        help="interleaved rounds; each times both sides, both ways")
    parser.add_argument("--min-run-time", type=float, default=0.2,
                        help="seconds per blocked_autorange")
    parser.add_argument("--back-to-back", type=int, default=20,
                        help="calls between two synchronisations for the throughput figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for the CPU (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds, args.min_run_time, args.back_to_back = 2, 0.01, 5

    device = byhand.pick_device(args.device)
    cases = QUICK_CASES if args.quick else FULL_CASES
    timing = {"rounds": args.rounds, "min_run_time": args.min_run_time,
              "back_to_back": args.back_to_back}
    torch.manual_seed(args.seed)

    results = [run_case(n, c, device, timing, args.seed) for n, c in cases]
    report = {
        "benchmark": "cross_entropy",
        "what": "byhand.cross_entropy_forward_backward vs F.cross_entropy + loss.backward()",
        "quick": args.quick,
        "device": str(device),
        "statistic": ("seconds per call from torch.utils.benchmark blocked_autorange, "
                      "both sides interleaved: median, quartiles and IQR over all blocks; "
                      "latency = one call + sync, throughput = back_to_back calls + one sync"),
        "rounds": args.rounds,
        "min_run_time_s": args.min_run_time,
        "back_to_back": args.back_to_back,
        "memory_method": memory_method(device),
        "cases": results,
        "machine": describe_machine(device),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
