r"""Time competing functions fairly on a busy machine, with :mod:`torch.utils.benchmark`.

:func:`interleaved` times each function in turn, round after round (A, B, then B, A,
...), so that a slow moment of the machine hurts every contestant alike. Each round is
one :meth:`torch.utils.benchmark.Timer.blocked_autorange`: the timer calibrates how many
calls make a block of at least ``min_run_time`` seconds, reads the clock only between
blocks, and synchronises the accelerator (CUDA, MPS) before every reading. Two figures
come out per function:

* **latency**, one call followed by a synchronisation (``fn(); synchronize()``), the
  time a caller waits for one step;
* **throughput**, :math:`K` calls back to back and one synchronisation at the end, the
  time per call when the device is kept busy (a loop that reads nothing back).

On a CPU the two coincide up to noise. Each is summarised by the median and the
interquartile range :math:`q_{75} - q_{25}` of the per-call times of all blocks, and the
1-minute load average is recorded before and after (a load above the core count means
other processes competed for the CPU).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils.benchmark import Timer

from .device import synchronize

__all__ = ["interleaved", "load_average", "summarise"]


def load_average() -> float | None:
    """The 1-minute load average of the machine, or None where the OS does not report it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def summarise(times: list[float]) -> dict[str, float | int]:
    """Median, quartiles, interquartile range and minimum of per-call times (seconds)."""
    if not times:
        raise ValueError("summarise: times must hold at least one measurement; got none")
    ordered = sorted(times)
    if len(ordered) == 1:
        q25 = q75 = ordered[0]
    else:
        q25, _, q75 = statistics.quantiles(ordered, n=4, method="inclusive")
    return {"median_s": statistics.median(ordered), "q25_s": q25, "q75_s": q75,
            "iqr_s": q75 - q25, "min_s": ordered[0], "blocks": len(ordered)}


def _block_times(stmt: str, env: dict[str, Any], min_run_time: float, per_stmt: int) -> list[float]:
    """Per-call seconds of each block of one ``blocked_autorange`` of ``stmt``."""
    timer = Timer(stmt=stmt, globals=env, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return [t / per_stmt for t in measurement.times]


def interleaved(
    fns: Mapping[str, Callable[[], object]],
    device: torch.device | str = "cpu",
    rounds: int = 10,
    min_run_time: float = 0.2,
    back_to_back: int = 20,
    warmup: int = 3,
) -> dict[str, Any]:
    """Latency and throughput of every function in ``fns``, timed in alternation.

    Every function is called ``warmup`` times first. Then, for each of ``rounds``
    rounds, in an order that rotates from round to round, each function gets one
    ``blocked_autorange`` of ``fn(); synchronize()`` (latency) and one of
    ``back_to_back`` calls with one synchronisation after them (throughput). Returns
    ``{name: {"latency": summary, "throughput": summary}}`` (see :func:`summarise`)
    plus ``load_average_before`` and ``load_average_after``.
    """
    if rounds < 1 or back_to_back < 1 or min_run_time <= 0:
        raise ValueError(
            "interleaved: rounds and back_to_back must be positive and min_run_time > 0; "
            f"got rounds={rounds}, back_to_back={back_to_back}, min_run_time={min_run_time}"
        )
    device = torch.device(device)
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    synchronize(device)
    load_before = load_average()
    latency: dict[str, list[float]] = {name: [] for name in names}
    throughput: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            env = {"fn": fns[name], "sync": lambda: synchronize(device), "k": back_to_back}
            latency[name] += _block_times("fn(); sync()", env, min_run_time, 1)
            throughput[name] += _block_times("for _ in range(k): fn()\nsync()", env,
                                             min_run_time, back_to_back)
    result: dict[str, Any] = {
        name: {"latency": summarise(latency[name]), "throughput": summarise(throughput[name])}
        for name in names
    }
    result["load_average_before"] = load_before
    result["load_average_after"] = load_average()
    return result
