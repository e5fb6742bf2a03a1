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

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.benchmark import Timer

from .device import load_average, synchronize
from .layers import mlp, torch_mlp
from .steps import torch_trainer, train_step

__all__ = ["interleaved", "load_average", "step_timings", "summarise"]


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


def step_timings(
    sizes: Sequence[int] = (784, 800, 10),
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    rounds: int = 10,
    min_run_time: float = 0.2,
    back_to_back: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Latency and throughput of one full training step, by hand and under autograd.

    Both models start from the same weights and see the same random batch; the two
    steps are timed in alternation by :func:`interleaved`
    (``torch.utils.benchmark``), ``rounds`` rounds of at least ``min_run_time`` seconds
    per figure. Returns ``manual`` and ``autograd``, each with ``latency`` (one step,
    then a synchronisation) and ``throughput`` (``back_to_back`` steps, one
    synchronisation) summaries (median, quartiles, IQR, minimum, in seconds per step);
    ``manual_over_autograd``, the ratio of the median throughputs (below 1: the
    hand-written step is faster); and the load average before and after.

    Examples:
        >>> t = step_timings((4, 3, 2), batch_size=2, rounds=1, min_run_time=0.001,
        ...                  back_to_back=1)
        >>> sorted(t["manual"]), t["manual_over_autograd"] > 0
        (['latency', 'throughput'], True)
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, sizes[0], generator=gen, dtype=dtype).to(device)
    y = torch.randint(0, sizes[-1], (batch_size,), generator=gen).to(device)
    model = mlp(sizes, device=device, dtype=dtype, generator=gen)
    net = torch_mlp(model)
    autograd_step = torch_trainer(net, lr=1e-3)
    result = interleaved({"manual": lambda: train_step(model, x, y, 1e-3),
                          "autograd": lambda: autograd_step(x, y)},
                         device=device, rounds=rounds, min_run_time=min_run_time,
                         back_to_back=back_to_back)
    result["manual_over_autograd"] = (result["manual"]["throughput"]["median_s"]
                                      / result["autograd"]["throughput"]["median_s"])
    return result
