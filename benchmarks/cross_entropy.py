"""Fused cross-entropy forward+backward by hand against ``F.cross_entropy`` + autograd.

``byhand.cross_entropy_forward_backward(x, y)`` returns the mean loss and
:math:`\\partial L/\\partial x = (\\operatorname{softmax}(x) - \\operatorname{onehot}(y))/N`
from one softmax pass whose buffer becomes the gradient. The reference is what a
training loop does with PyTorch: ``F.cross_entropy(x, y).backward()`` on a leaf that
requires grad (its ``.grad`` reset to ``None`` before each call, as
``zero_grad(set_to_none=True)`` does).

For each case (N, C) in float32 on the chosen device the script reports

* the median wall time of each side over many interleaved repeats, after a warm-up,
  each repeat timing ``inner`` back-to-back calls (``torch.cuda.synchronize`` around
  them on a GPU), and ``time_ratio = autograd_s / byhand_s`` (> 1: byhand is faster);
* the peak extra memory of one call: the highest number of bytes allocated above what
  was allocated before the call, outputs included. On CUDA from
  ``torch.cuda.max_memory_allocated``; on the CPU from the allocator events that
  ``torch.profiler`` records with ``profile_memory=True`` (every allocation and free,
  summed in time order); ``memory_ratio = byhand / autograd`` (< 1: byhand needs less).

It prints exactly one JSON line on stdout. Run ``python benchmarks/cross_entropy.py``
(``--quick`` for a smoke run with small sizes and few repeats, ``--device cpu`` to pick
the device instead of ``byhand.pick_device()``, ``--threads N`` to fix the CPU threads).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import byhand
from byhand.device import describe_machine, synchronize

FULL_CASES = ((512, 10), (8192, 10), (2048, 32768))
QUICK_CASES = ((512, 10), (64, 32768))
GOAL_SPEEDUP_SMALL_C = 1.3  # at C = 10: autograd_s / byhand_s at least this
GOAL_SPEEDUP_LARGE_C = 1.0  # at C = 32768: byhand no slower
GOAL_MEMORY_RATIO = 0.5  # byhand's peak extra memory at most half of autograd's

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


def _time_once(fn: Callable[[], Pair], inner: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / inner


def _calibrate(fns: list[Callable[[], Pair]], device: torch.device, target_s: float) -> int:
    """How many back-to-back calls make one timed sample last about ``target_s``.

    A call's cost is the median of several single-call timings (at least 5, for at
    least ``target_s``), so that one call delayed by another process does not decide.
    """
    per_call = []
    for fn in fns:
        times: list[float] = []
        while len(times) < 5 or sum(times) < target_s:
            times.append(_time_once(fn, 1, device))
        per_call.append(statistics.median(times))
    return max(1, min(10_000, round(target_s / max(max(per_call), 1e-7))))


def _peak_bytes_cuda(fn: Callable[[], Pair], device: torch.device) -> int:
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = fn()
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del out
    return int(peak)


def _peak_bytes_profiler(fn: Callable[[], Pair]) -> int:
    """Peak of the running sum of the CPU allocator's (de)allocation events during ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    del out
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return int(peak)


def _peak_bytes(fn: Callable[[], Pair], device: torch.device, reset: Callable[[], None]) -> int:
    reset()  # free the previous call's gradient outside the measured region
    if device.type == "cuda":
        return _peak_bytes_cuda(fn, device)
    return _peak_bytes_profiler(fn)


def memory_method(device: torch.device) -> str:
    if device.type == "cuda":
        return (
            "torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus "
            "memory_allocated() before the call (outputs included)"
        )
    return (
        "torch.profiler with profile_memory=True: peak of the running sum of the CPU "
        "allocator's allocation and free events during one call, in time order "
        "(outputs included)"
    )


def run_case(
    n: int, c: int, device: torch.device, repeats: int, target_s: float, seed: int
) -> dict[str, Any]:
    by_hand, autograd, leaf = _make_case(n, c, device, seed)

    # Same numbers first: the benchmark compares two ways to get one result.
    loss_ours, grad_ours = by_hand()
    loss_ref, grad_ref = autograd()
    grad_check = byhand.compare("grad", grad_ours, grad_ref)
    loss_diff = float((loss_ours - loss_ref).abs())
    if not grad_check.close:
        raise AssertionError(f"N={n}, C={c}: byhand and autograd disagree: {grad_check}")
    del loss_ours, grad_ours, loss_ref, grad_ref

    # Warm-up (allocator caches, kernels, autograd graph machinery), then calibrate.
    for fn in (by_hand, autograd, by_hand, autograd):
        fn()
    inner = _calibrate([by_hand, autograd], device, target_s)

    samples: dict[str, list[float]] = {"byhand": [], "autograd": []}
    for r in range(repeats):  # interleaved, alternating which side goes first
        order = (("byhand", by_hand), ("autograd", autograd))
        for name, fn in order if r % 2 == 0 else order[::-1]:
            samples[name].append(_time_once(fn, inner, device))
    byhand_s = statistics.median(samples["byhand"])
    autograd_s = statistics.median(samples["autograd"])

    def clear_leaf() -> None:
        leaf.grad = None

    peak_ours = max(_peak_bytes(by_hand, device, clear_leaf) for _ in range(2))
    peak_ref = max(_peak_bytes(autograd, device, clear_leaf) for _ in range(2))
    leaf.grad = None

    time_ratio = autograd_s / byhand_s
    memory_ratio = peak_ours / peak_ref if peak_ref else float("nan")
    speed_goal = GOAL_SPEEDUP_SMALL_C if c <= 10 else GOAL_SPEEDUP_LARGE_C
    return {
        "N": n,
        "C": c,
        "dtype": "float32",
        "input_bytes": n * c * 4,
        "inner": inner,
        "repeats": repeats,
        "byhand_s": byhand_s,
        "autograd_s": autograd_s,
        "byhand_s_iqr": _iqr(samples["byhand"]),
        "autograd_s_iqr": _iqr(samples["autograd"]),
        "time_ratio": time_ratio,
        "byhand_peak_bytes": peak_ours,
        "autograd_peak_bytes": peak_ref,
        "memory_ratio": memory_ratio,
        "grad_max_abs_diff": grad_check.max_abs_diff,
        "loss_abs_diff": loss_diff,
        "goal_time_ratio": speed_goal,
        "goal_memory_ratio": GOAL_MEMORY_RATIO,
        "goal_met": bool(time_ratio >= speed_goal and memory_ratio <= GOAL_MEMORY_RATIO),
    }


def _iqr(values: list[float]) -> float:
    if len(values) < 4:
        return max(values) - min(values)
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed samples per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for the CPU (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    device = byhand.pick_device(args.device)
    cases = QUICK_CASES if args.quick else FULL_CASES
    repeats = args.repeats or (5 if args.quick else 31)
    target_s = 0.002 if args.quick else 0.05
    torch.manual_seed(args.seed)

    results = [run_case(n, c, device, repeats, target_s, args.seed) for n, c in cases]
    report = {
        "benchmark": "cross_entropy",
        "what": "byhand.cross_entropy_forward_backward vs F.cross_entropy + loss.backward()",
        "quick": args.quick,
        "device": str(device),
        "statistic": "median seconds per call over interleaved repeats",
        "memory_method": memory_method(device),
        "cases": results,
        "all_goals_met": all(r["goal_met"] for r in results),
        "machine": describe_machine(device),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
