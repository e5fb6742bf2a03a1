"""Start the processes of a ``torch.distributed`` group on one machine, and supervise them.

:func:`launch` spawns :math:`P` processes on 127.0.0.1, runs one function in each (with
the process group initialised), returns their values by rank, and ends every one of
them when one fails, dies or runs out of time (:class:`WorkerError`). Under
``torchrun`` the processes exist already: :func:`run_in_environment_group` joins the
group its environment describes. Gloo serves the CPU, NCCL serves CUDA
(:func:`backend_for`). No mathematics here: :mod:`byhand.distributed` holds that.
"""

from __future__ import annotations

import io
import math
import multiprocessing as mp
import os
import queue
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DEFAULT_TIMEOUT",
    "WorkerError",
    "backend_for",
    "free_port",
    "in_sequence",
    "init_from_environment",
    "launch",
    "launched_by_torchrun",
    "run_in_environment_group",
]

DEFAULT_TIMEOUT = 120.0
"""Seconds a rank waits for the others in a collective before its run fails."""


# ------------------------------------------------------------------------ processes


class WorkerError(RuntimeError):
    """A worker raised, died or did not finish in time; the message says which and why.

    Examples:
        >>> launch(math.sqrt, (-1.0,), processes=1)
        Traceback (most recent call last):
            ...
        byhand.launcher.WorkerError: worker 0 of 1 failed: ValueError: math domain error
        >>> issubclass(WorkerError, RuntimeError)
        True
    """


def backend_for(device: torch.device | str) -> str:
    """``nccl`` for CUDA tensors, ``gloo`` for CPU tensors; other devices are refused.

    Examples:
        >>> backend_for("cpu"), backend_for(torch.device("cuda", 0))
        ('gloo', 'nccl')
        >>> backend_for("mps")
        Traceback (most recent call last):
            ...
        ValueError: distributed: device must be 'cpu' (gloo) or 'cuda' (nccl); got 'mps'
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return "nccl"
    if kind == "cpu":
        return "gloo"
    raise ValueError(f"distributed: device must be 'cpu' (gloo) or 'cuda' (nccl); got {kind!r}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now: the one the system picks when binding port 0.

    Examples:
        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its environment names a rank).

    Examples:
        >>> launched_by_torchrun()
        False
    """
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def init_from_environment(device: torch.device | str = "cpu",
                          timeout: float = DEFAULT_TIMEOUT) -> None:
    """Join the process group described by ``torchrun``'s environment variables.

    Examples:
        >>> init_from_environment("cpu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        RuntimeError: init_from_environment: RANK, ... must be set, as torchrun sets them
    """
    if not launched_by_torchrun():
        raise RuntimeError("init_from_environment: RANK, WORLD_SIZE, MASTER_ADDR and "
                           "MASTER_PORT must be set, as torchrun sets them")
    dist.init_process_group(backend_for(device), init_method="env://",
                            timeout=timedelta(seconds=timeout))


def run_in_environment_group(fn: Callable[..., Any], args: Sequence[Any] = (),
                             device: torch.device | str = "cpu",
                             timeout: float = DEFAULT_TIMEOUT) -> tuple[int, Any]:
    """Under ``torchrun``: join its group, run ``fn(*args)``, leave; return ``(rank, value)``.

    Examples:
        >>> names = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
        >>> names["MASTER_PORT"] = str(free_port())
        >>> os.environ.update(names)
        >>> run_in_environment_group(dist.get_world_size)
        (0, 1)
        >>> _ = [os.environ.pop(name) for name in names]
    """
    init_from_environment(device, timeout)
    try:
        return dist.get_rank(), fn(*args)
    finally:
        dist.destroy_process_group()


@dataclass(frozen=True)
class _Group:
    """Where and how the spawned processes meet: a TCP rendezvous on 127.0.0.1."""

    backend: str
    world_size: int
    port: int
    timeout: float
    threads: int


@contextmanager
def _process_group(group: _Group, rank: int) -> Iterator[None]:
    """Join the group for the body, and leave it after. With gloo every rank first waits
    for all to have joined: a rank whose ``fn`` returns at once would otherwise close its
    connections while another is still completing its own, which then fails with
    "Connection closed by peer" instead of running its ``fn``."""
    dist.init_process_group(group.backend, init_method=f"tcp://127.0.0.1:{group.port}",
                            rank=rank, world_size=group.world_size,
                            timeout=timedelta(seconds=group.timeout))
    try:
        if group.backend == "gloo":
            dist.barrier()
        yield
    finally:
        dist.destroy_process_group()


def _worker(fn: Callable[..., Any], args: Sequence[Any], group: _Group, rank: int,
            results: Any) -> None:
    """Body of a spawned process: join the group, run ``fn(*args)``, report to the parent."""
    torch.set_num_threads(group.threads)
    try:
        with _process_group(group, rank):
            value = fn(*args)
        buffer = io.BytesIO()
        torch.save(value, buffer)  # bytes, not shared memory: the worker may exit at once
        results.put(("ok", rank, buffer.getvalue()))
    except BaseException as error:
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        results.put(("error", rank, text))


def launch(fn: Callable[..., Any], args: Sequence[Any] = (), processes: int = 2, *,
           backend: str = "gloo", timeout: float = 60.0,
           collective_timeout: float | None = None) -> list[Any]:
    """Run ``fn(*args)`` in ``processes`` spawned processes of one group on 127.0.0.1.

    ``fn`` must be importable (defined at the top level of a module): the ``spawn``
    start method imports it afresh in each process, where it finds the process group
    initialised (``torch.distributed.get_rank()`` tells it its rank). Returns the
    values of ``fn`` by rank. Raises :class:`WorkerError` as soon as a worker raises
    or dies, and when the workers have not all finished after ``timeout`` seconds;
    the other workers are then terminated, so nothing is left running.
    ``collective_timeout`` bounds each collective (default: ``timeout``, or
    :data:`DEFAULT_TIMEOUT` when ``timeout`` is infinite), so a worker that hangs makes
    the others fail after it even without an overall deadline.

    Examples:
        >>> launch(dist.get_rank, processes=2)
        [0, 1]
        >>> launch(in_sequence, [(dist.get_rank, ()), (dist.get_world_size, ())], processes=2)
        [[0, 2], [1, 2]]
    """
    if processes < 1:
        raise ValueError(f"launch: processes must be a positive integer; got {processes}")
    if not timeout > 0:
        raise ValueError(f"launch: timeout must be a positive number of seconds; got {timeout}")
    context = mp.get_context("spawn")
    results = context.Queue()
    collective_timeout = collective_timeout or (timeout if math.isfinite(timeout)
                                                else DEFAULT_TIMEOUT)
    group = _Group(backend, processes, free_port(), collective_timeout,
                   threads=max(1, (os.cpu_count() or 1) // processes))
    workers = [context.Process(target=_worker, daemon=True, name=f"byhand-rank-{rank}",
                               args=(fn, tuple(args), group, rank, results))
               for rank in range(processes)]
    for worker in workers:
        worker.start()
    try:
        return _collect(workers, results, timeout)
    finally:
        _stop(workers)
        results.close()


def in_sequence(*calls: tuple[Callable[..., Any], Sequence[Any]]) -> list[Any]:
    """Worker: run ``fn(*args)`` for each ``(fn, args)`` in turn, in one process group.

    ``launch(in_sequence, ((f, a), (g, b)))`` pays for starting the processes once.

    Examples:
        >>> in_sequence((max, (1, 2)), (min, (1, 2)))
        [2, 1]
    """
    return [fn(*args) for fn, args in calls]


def _collect(workers: list[Any], results: Any, timeout: float) -> list[Any]:
    """Wait for one message per worker; raise :class:`WorkerError` when one fails or dies."""
    deadline = time.monotonic() + timeout
    values: dict[int, Any] = {}
    errors: dict[int, str] = {}
    while len(values) + len(errors) < len(workers):
        try:
            kind, rank, payload = results.get(timeout=0.05)
        except queue.Empty:
            dead = [rank for rank, worker in enumerate(workers)
                    if worker.exitcode is not None and rank not in values and rank not in errors]
            if dead and not _drain(results, values, errors, 1.0):
                errors |= {rank: f"died with exit code {workers[rank].exitcode}" for rank in dead}
            if errors or time.monotonic() > deadline:
                break
            continue
        _record(kind, rank, payload, values, errors)
        if errors:  # a failure makes the others fail soon after: gather their reasons too
            _drain(results, values, errors, 2.0, until=len(workers))
            break
    if errors:
        lines = [f"worker {rank} of {len(workers)} failed: {errors[rank]}" for rank in sorted(errors)]
        raise WorkerError("\n".join(lines))
    if len(values) < len(workers):
        missing = [rank for rank in range(len(workers)) if rank not in values]
        raise WorkerError(f"workers {missing} of {len(workers)} did not finish within "
                          f"{timeout:g} s; all workers were stopped")
    return [values[rank] for rank in range(len(workers))]


def _record(kind: str, rank: int, payload: Any, values: dict[int, Any],
            errors: dict[int, str]) -> None:
    if kind == "error":
        errors[rank] = payload
    else:
        values[rank] = torch.load(io.BytesIO(payload), weights_only=False)


def _drain(results: Any, values: dict[int, Any], errors: dict[int, str], seconds: float,
           until: int | None = None) -> bool:
    """Read the messages that arrive within ``seconds`` (or until ``until`` are in);
    return whether any arrived."""
    deadline, got = time.monotonic() + seconds, False
    while time.monotonic() < deadline and (until is None or len(values) + len(errors) < until):
        try:
            kind, rank, payload = results.get(timeout=0.05)
            _record(kind, rank, payload, values, errors)
            got = True
        except queue.Empty:
            if until is None and got:
                break
    return got


def _stop(workers: list[Any]) -> None:
    """Terminate every worker still running, then kill any that ignores the signal."""
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    for worker in workers:
        worker.join(2.0)
        if worker.is_alive():
            worker.kill()
            worker.join()
