"""The Triton cross-entropy kernel against PyTorch on a CUDA GPU: time, memory, bandwidth.

For each case N x C in {8192 x 32768, 16384 x 128256} and dtype in {bfloat16, float32}
it first checks that every contestant gives PyTorch's loss and gradient, then times one
forward + backward of the mean cross-entropy of logits that require grad:

* ``kernel_inplace``: ``byhand.kernels.cross_entropy(..., inplace=True)``, the gradient
  written over the logits, the backward one in-place multiply;
* ``kernel_copy``: the same with ``inplace=False`` (a second N x C buffer);
* ``kernel_forward``: the kernel launch alone (loss and gradient, no autograd);
* ``torch_eager``: ``F.cross_entropy(x, y).backward()``;
* ``torch_compile``: ``torch.compile(F.cross_entropy)`` then ``backward()``;
* ``byhand_fused``: ``byhand.cross_entropy_forward_backward`` (byhand's eager fused path).

Time is the median of CUDA-event times over repeats after warm-up calls (a fresh copy
of the logits is made before each call, outside the timed region). Peak memory is
``torch.cuda.max_memory_allocated`` during the call minus what was allocated before it
(the logits and their copy already exist). The bandwidth limit is bytes moved over the
GPU's memory bandwidth (3.35 TB/s H100 SXM, 4.8 TB/s H200, from the device name): the
kernel reads the logits twice and writes them once, 3 N C bytes, and the in-place
backward reads and writes them once more, 2 N C bytes; ``fraction_of_limit`` is that
limit over the measured time. Aims (not asserted): ``kernel_inplace`` at least 1.5x
faster than ``torch_eager``, peak memory of one logits tensor at most, and at least 70%
of the bandwidth limit. Prints one JSON line per case with the device name.
Refuses to run without CUDA.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import byhand
from byhand import kernels

CASES = ((8192, 32768), (16384, 128256))
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12}   # bytes per second, SXM parts


def bandwidth(name: str) -> float | None:
    """The HBM bandwidth of a GPU named ``name``, where we know it (H100 PCIe: not listed)."""
    if "H100" in name and "PCIe" in name:
        return None
    return next((bw for key, bw in BANDWIDTH.items() if key in name), None)


def measure(call: Callable[[], Any], prepare: Callable[[], Any], repeats: int) -> tuple[float, int]:
    """Median seconds of ``call`` (after ``prepare``, untimed), and its peak extra bytes."""
    times = []
    peak = 0
    for i in range(repeats + 2):
        prepare()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        torch.cuda.synchronize()
        peak = max(peak, torch.cuda.max_memory_allocated() - base)
        if i >= 2:                                   # two warm-up calls
            times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times), peak


def run_case(n: int, c: int, dtype: torch.dtype, repeats: int) -> dict[str, Any]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    base = torch.randn(n, c, device="cuda", dtype=dtype, generator=gen)
    y = torch.randint(0, c, (n,), device="cuda", generator=gen)
    state: dict[str, Any] = {}
    compiled = torch.compile(F.cross_entropy)

    def fresh() -> None:
        state.clear()
        leaf = base.clone().requires_grad_(True)
        state["leaf"], state["logits"] = leaf, leaf * 1   # a non-leaf, like a layer's output
        state["plain"] = base.clone()

    def backward_of(fn: Callable[..., torch.Tensor], **kw: Any) -> Callable[[], None]:
        def call() -> None:
            fn(state["logits"], y, **kw).backward()
        return call

    contestants: dict[str, Callable[[], Any]] = {
        "kernel_inplace": backward_of(kernels.cross_entropy, inplace=True),
        "kernel_copy": backward_of(kernels.cross_entropy),
        "kernel_forward": lambda: kernels.cross_entropy_forward_backward(state["plain"], y, inplace=True),
        "torch_eager": backward_of(F.cross_entropy),
        "torch_compile": backward_of(compiled),
        "byhand_fused": lambda: byhand.cross_entropy_forward_backward(state["plain"], y),
    }
    # Correctness first: every contestant's gradient against PyTorch's (in float32).
    fresh()
    F.cross_entropy(state["logits"], y).backward()
    reference = state["leaf"].grad.float()
    errors = {}
    for name in ("kernel_inplace", "kernel_copy", "torch_compile"):
        fresh()
        contestants[name]()
        errors[name] = float((state["leaf"].grad.float() - reference).abs().max())
    fresh()
    errors["byhand_fused"] = float((byhand.cross_entropy_forward_backward(state["plain"], y)[1].float()
                                    - reference).abs().max())
    del reference
    seconds, peaks = {}, {}
    for name, call in contestants.items():
        seconds[name], peaks[name] = measure(call, fresh, repeats)
    logits_bytes = n * c * base.element_size()
    name = torch.cuda.get_device_name()
    bw = bandwidth(name)
    limit_forward = 3 * logits_bytes / bw if bw else None
    limit_step = 5 * logits_bytes / bw if bw else None
    return {
        "benchmark": "kernel_cross_entropy", "device": name, "N": n, "C": c,
        "dtype": str(dtype).removeprefix("torch."), "repeats": repeats,
        "torch": torch.__version__, "logits_bytes": logits_bytes,
        "bandwidth_bytes_per_s": bw,
        "median_s": seconds, "peak_extra_bytes": peaks,
        "peak_over_logits": {k: v / logits_bytes for k, v in peaks.items()},
        "max_abs_grad_diff_vs_torch_eager": errors,
        "limit_s": {"kernel_forward (3NC bytes)": limit_forward, "kernel_inplace (5NC bytes)": limit_step},
        "fraction_of_limit": {
            "kernel_forward": limit_forward / seconds["kernel_forward"] if limit_forward else None,
            "kernel_inplace": limit_step / seconds["kernel_inplace"] if limit_step else None},
        "speedup_vs_torch_eager": {k: seconds["torch_eager"] / v for k, v in seconds.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--cases", default=",".join(f"{n}x{c}" for n, c in CASES),
                        help="comma-separated NxC (default: %(default)s)")
    parser.add_argument("--dtypes", default="bfloat16,float32")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("kernel_cross_entropy: needs a CUDA GPU (the kernel's speed is a GPU figure)")
    for case in args.cases.split(","):
        n, c = (int(v) for v in case.split("x"))
        for dtype in args.dtypes.split(","):
            print(json.dumps(run_case(n, c, DTYPES[dtype], args.repeats)), flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
