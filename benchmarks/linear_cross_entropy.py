"""Linear + cross-entropy at vocabulary scale: naive, byhand (chunked), and PyTorch's chunked path.

Each contestant computes the mean loss of ``input @ linear_weight.T`` against class
targets and the gradients of ``input`` and ``linear_weight`` (float32, no bias, as in a
language model's output layer), starting from leaves whose ``.grad`` is None:

* ``naive``: ``F.cross_entropy(F.linear(a, W), y).backward()``, which holds the
  ``N x V`` logits and their gradient;
* ``byhand``: ``byhand.linear_cross_entropy(a, W, y).backward()`` with its default
  ``chunk_size`` (H/2 rows);
* ``torch_auto``: ``F.linear_cross_entropy(a, W, y, options=LinearCrossEntropyOptions())``,
  PyTorch's batch-chunked path with its automatic chunk size;
* ``torch_same``: the same with ``batch_chunk_size`` equal to byhand's chunk size.

For each (N, H, V) the script first checks that every contestant gives naive's loss
and gradients, then reports the median wall time over interleaved repeats (after a
warm-up call), and the peak extra memory of one call measured the same way for all
(see ``memory_method`` in the output), with the ratios to naive's and to PyTorch's.
``no_grad`` times the loss alone in evaluation, byhand against naive, in alternation
(:func:`byhand.timing.interleaved`, median and fastest latency, with the load average).
It prints exactly one JSON line on stdout (and one progress line per case on stderr).
In half precision on the CPU the loss-only pass is the compiled loop of
``byhand.native_logsumexp`` where it is built (``compiled_loss_loop`` in the output).
``--quick`` runs small sizes with few repeats; ``--sizes 4096x512x32768 ...`` picks the
cases; ``--threads 1`` gives steadier times on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import byhand
from byhand import native_logsumexp
from byhand.device import describe_machine, synchronize
from byhand.linear_cross_entropy import default_chunk_size
from byhand.memory import memory_method, peak_bytes
from byhand.timing import interleaved

FULL_CASES = ((1024, 512, 32768), (2048, 512, 32768), (4096, 512, 32768),
              (4096, 512, 8192), (4096, 512, 16384))
QUICK_CASES = ((256, 64, 2048), (512, 64, 4096))
# Llama 3's output layer (H = 4096, V = 128256) scaled down 32 times, N/H = 1, 2, 4, 8
LLAMA_CASES = tuple((r * 128, 128, 4008) for r in (1, 2, 4, 8))
LLAMA_GPU_CASES = tuple((r * 4096, 4096, 128256) for r in (1, 2))
GOAL_MEMORY_VS_NAIVE = 0.25  # byhand's peak extra memory at most this fraction of naive's
GOAL_MEMORY_VS_TORCH = 1.0  # ... and no more than PyTorch's chunked path (auto)
GOAL_TIME_VS_NAIVE = 1.2  # byhand's time at most this multiple of naive's

Result = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def contestants(
    n: int, h: int, v: int, device: torch.device, seed: int,
    dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, Callable[[], Result]], Callable[[], None], int]:
    """The four ways to get loss and gradients, a function that frees the gradients, byhand's chunk."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, h, generator=gen).to(device, dtype).requires_grad_(True)
    w = (torch.randn(v, h, generator=gen) / h**0.5).to(device, dtype).requires_grad_(True)
    y = torch.randint(0, v, (n,), generator=gen).to(device)
    chunk = default_chunk_size(n, h)

    def clear() -> None:
        a.grad = w.grad = None

    def run(loss_fn: Callable[[], torch.Tensor]) -> Callable[[], Result]:
        def call() -> Result:
            clear()
            loss = loss_fn()
            loss.backward()
            assert a.grad is not None and w.grad is not None
            return loss.detach(), a.grad, w.grad
        return call

    auto = torch.nn.LinearCrossEntropyOptions()
    same = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=chunk, chunking_method=None)
    fns = {
        "naive": run(lambda: F.cross_entropy(F.linear(a, w), y)),
        "byhand": run(lambda: byhand.linear_cross_entropy(a, w, y)),
        "torch_auto": run(lambda: F.linear_cross_entropy(a, w, y, options=auto)),
        "torch_same": run(lambda: F.linear_cross_entropy(a, w, y, options=same)),
    }
    return fns, clear, chunk


def _timed(fn: Callable[[], Result], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def _torch_auto_chunk(n: int, h: int, v: int, device: torch.device, dtype: torch.dtype) -> int:
    options = torch.nn.LinearCrossEntropyOptions()._adjust(
        num_batches=n, in_features=h, num_classes=v, dtype=dtype, device=device)
    return int(options.batch_chunk_size)


def _evaluation(n: int, h: int, v: int, device: torch.device, dtype: torch.dtype,
                seed: int, repeats: int) -> dict[str, Any]:
    """Median seconds of the loss alone under no_grad, byhand and naive PyTorch, timed in
    alternation by :func:`byhand.timing.interleaved` (``repeats`` rounds)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, h, generator=gen).to(device, dtype)
    w = (torch.randn(v, h, generator=gen) / h**0.5).to(device, dtype)
    y = torch.randint(0, v, (n,), generator=gen).to(device)
    fns = {"naive": lambda: F.cross_entropy(F.linear(a, w), y),
           "byhand": lambda: byhand.linear_cross_entropy(a, w, y)}
    with torch.no_grad():
        timed = interleaved(fns, device=device, rounds=repeats, min_run_time=0.05,
                            back_to_back=5, warmup=2)
    times = {name: timed[name]["latency"]["median_s"] for name in fns}
    fastest = {name: timed[name]["latency"]["min_s"] for name in fns}
    return {**{f"{k}_s": t for k, t in times.items()},
            "byhand_over_naive": times["byhand"] / times["naive"],
            # Naive's time can be bimodal on the CPU (its N x V logits are fresh memory,
            # page-faulted on some calls and not on others): the ratio of the fastest
            # calls is the comparison that its slow calls cannot flatter.
            **{f"{k}_min_s": t for k, t in fastest.items()},
            "byhand_over_naive_fastest": fastest["byhand"] / fastest["naive"],
            "load_average": [timed["load_average_before"], timed["load_average_after"]]}


def run_case(n: int, h: int, v: int, device: torch.device, repeats: int,
             seed: int, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    fns, clear, chunk = contestants(n, h, v, device, seed, dtype)
    tolerance = {"rtol": 1e-4, "atol": 1e-6} if dtype == torch.float32 else {
        "rtol": 5e-2, "atol": 5e-3}

    # The same numbers first (this call is also each contestant's warm-up).
    reference = fns["naive"]()
    reference = tuple(t.clone() for t in reference)
    max_diff: dict[str, float] = {}
    for name, fn in fns.items():
        got = fn()
        for what, ours, ref in zip(("loss", "grad_input", "grad_weight"), got, reference,
                                   strict=True):
            check = byhand.compare(what, ours.float(), ref.float(), **tolerance)
            if not check.close:
                raise AssertionError(f"{name} (N={n}, H={h}, V={v}): {check}")
        max_diff[name] = max(float((o.float() - r.float()).abs().max()) for o, r in zip(got, reference,
                                                                          strict=True))
    del reference
    clear()

    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns.items())
    for r in range(repeats):  # interleaved, the order rotating from one repeat to the next
        k = r % len(order)
        for name, fn in order[k:] + order[:k]:
            samples[name].append(_timed(fn, device))
            clear()

    peaks = {}
    for name, fn in fns.items():
        clear()
        peaks[name] = peak_bytes(fn, device)
    clear()

    times = {name: statistics.median(s) for name, s in samples.items()}
    vs_naive = peaks["byhand"] / peaks["naive"]
    vs_torch = peaks["byhand"] / peaks["torch_auto"]
    time_vs_naive = times["byhand"] / times["naive"]
    return {
        "N": n, "H": h, "V": v, "dtype": str(dtype).removeprefix("torch."),
        "logits_bytes": n * v * dtype.itemsize,
        "byhand_chunk_size": chunk,
        "torch_auto_chunk_size": _torch_auto_chunk(n, h, v, device, dtype),
        "repeats": repeats,
        "median_s": times,
        "min_s": {name: min(s) for name, s in samples.items()},
        "peak_bytes": peaks,
        "max_abs_diff_vs_naive": max_diff,
        "memory_byhand_over_naive": vs_naive,
        "memory_byhand_over_torch_auto": vs_torch,
        "memory_byhand_over_torch_same": peaks["byhand"] / peaks["torch_same"],
        "time_byhand_over_naive": time_vs_naive,
        "time_byhand_over_torch_auto": times["byhand"] / times["torch_auto"],
        "no_grad": _evaluation(n, h, v, device, dtype, seed, repeats),
        "goals": {
            "memory_vs_naive": vs_naive <= GOAL_MEMORY_VS_NAIVE,
            "memory_vs_torch_auto": vs_torch <= GOAL_MEMORY_VS_TORCH,
            "time_vs_naive": time_vs_naive <= GOAL_TIME_VS_NAIVE,
        },
    }


def _size(text: str) -> tuple[int, int, int]:
    try:
        n, h, v = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a size is NxHxV, e.g. 4096x512x32768; got {text!r}") from None
    return n, h, v


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per contestant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", nargs="+", type=_size, default=None, metavar="NxHxV",
                        help="the cases to run instead of the default ones, e.g. 4096x512x32768")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="the inputs' dtype (default float32)")
    parser.add_argument("--llama", action="store_true",
                        help="Llama-like proportions: H = 128, V = 4008, N/H 1-8 (on CUDA "
                             "also H = 4096, V = 128256)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for the CPU (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = byhand.pick_device(args.device)
    cases = args.sizes or (QUICK_CASES if args.quick else FULL_CASES)
    if args.llama and not args.sizes:
        cases = LLAMA_CASES + (LLAMA_GPU_CASES if device.type == "cuda" else ())
    dtype = getattr(torch, args.dtype)
    repeats = args.repeats or (3 if args.quick else 5)
    torch.manual_seed(args.seed)

    results = []
    for n, h, v in cases:
        results.append(run_case(n, h, v, device, repeats, args.seed, dtype))
        print(f"done: N={n}, H={h}, V={v}", file=sys.stderr, flush=True)
    report = {
        "benchmark": "linear_cross_entropy",
        "dtype": args.dtype,
        "what": f"forward + backward of linear + mean cross-entropy ({args.dtype}, no bias): "
                "naive F.linear + F.cross_entropy, byhand.linear_cross_entropy, "
                "F.linear_cross_entropy with LinearCrossEntropyOptions (auto and same chunk)",
        "quick": args.quick,
        "device": str(device),
        "statistic": "median seconds per call over interleaved repeats, after a warm-up call",
        "memory_method": memory_method(device),
        # whether half-precision evaluation on the CPU ran the compiled loop of
        # byhand.native_logsumexp (False: PyTorch's operators made its passes)
        "compiled_loss_loop": device.type == "cpu" and native_logsumexp.available(dtype),
        "goals": {"memory_byhand_over_naive_at_most": GOAL_MEMORY_VS_NAIVE,
                  "memory_byhand_over_torch_auto_at_most": GOAL_MEMORY_VS_TORCH,
                  "time_byhand_over_naive_at_most": GOAL_TIME_VS_NAIVE},
        "cases": results,
        "machine": describe_machine(device),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
