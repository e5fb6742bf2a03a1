"""Measure the peak extra memory of one call, the same way for every contestant.

On CUDA the allocator keeps a high-water mark. On the CPU it does not, and
``tracemalloc`` or the process's peak RSS are blind or coarse (torch's allocations
bypass Python's allocator, and the RSS never goes down). So on the CPU the profiler
is asked to record every allocation and free that PyTorch's CPU allocator performs
during the call; the running sum of those events, in time order, peaks at the answer.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .device import synchronize

__all__ = ["allocation_timeline", "memory_method", "peak_bytes"]


def _peak_bytes_cuda(fn: Callable[[], Any], device: torch.device) -> int:
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = fn()
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del out
    return int(peak)


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: the profiler's C++ code logs its start and stop there."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def allocation_timeline(fn: Callable[[], Any]) -> tuple[list[float], list[int]]:
    """Bytes held above the starting point after each CPU allocation or free during ``fn()``.

    Returns the times (seconds since the first event) and the running sums. The profiler
    records the events of PyTorch's CPU allocator only, so use it on CPU tensors.

    Examples:
        >>> def two_buffers():
        ...     a = torch.ones(1000)  # 4,000 bytes
        ...     b = torch.ones(2000)  # 8,000 more while a is alive
        ...     del a
        ...     return b
        >>> allocation_timeline(two_buffers)[1]
        [4000, 12000, 8000]
    """
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings(), _quiet_fd2():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    del out
    times, held, live = [], [], 0
    for start_ns, nbytes in events:
        live += nbytes
        times.append((start_ns - events[0][0]) * 1e-9)
        held.append(live)
    return times, held


def peak_bytes(fn: Callable[[], Any], device: torch.device | str = "cpu") -> int:
    """The most bytes ``fn()`` held at once above what was allocated before it.

    Whatever ``fn`` returns counts (it is alive when the call ends); memory freed
    before the call, or allocated outside PyTorch, does not.

    Examples:
        >>> peak_bytes(lambda: torch.ones(1000) + torch.ones(1000))  # two inputs and the sum
        12000
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _peak_bytes_cuda(fn, device)
    return max([0, *allocation_timeline(fn)[1]])


def memory_method(device: torch.device | str = "cpu") -> str:
    """One sentence saying how :func:`peak_bytes` measured on ``device``.

    Examples:
        >>> memory_method("cpu").split(":")[0]
        'torch.profiler with profile_memory=True'
    """
    if torch.device(device).type == "cuda":
        return ("torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus "
                "memory_allocated() before the call (outputs included)")
    return ("torch.profiler with profile_memory=True: peak of the running sum of the CPU "
            "allocator's allocation and free events during one call, in time order "
            "(outputs included)")
