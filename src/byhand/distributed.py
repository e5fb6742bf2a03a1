r"""Data-parallel training with the hand-written backward on :mod:`torch.distributed`.

:math:`P` processes (ranks :math:`r = 0, \ldots, P-1`) hold the same model and split
every minibatch :math:`B` into shards :math:`B_r`. Each rank computes, for its own
rows, the *sum* of the per-sample losses and the *sum* of the counted weights

.. math::

   S_r = \sum_{n \in B_r} L_n, \qquad D_r = \sum_{n \in B_r} \mu_n w_{y_n}

(the ignore mask :math:`\mu_n` is 0 where :math:`y_n` is ``ignore_index``, else 1;
:math:`D_r` is the number of rows for probability targets). One all-reduce of the
pair gives :math:`S = \sum_r S_r` and :math:`D = \sum_r D_r`, the numerator and
denominator of the one-process mean :math:`L = S/D`, so the logit gradient of every
row is the one-process gradient

.. math::

   \frac{\partial L}{\partial x_{nj}} = \frac{1}{D}\,\frac{\partial S_r}{\partial x_{nj}},
   \qquad n \in B_r,

and a parameter gradient, a sum over the rows of all shards, is the plain *sum* of the
per-rank gradients (one flat all-reduce, no division by :math:`P`). Averaging the
per-rank means instead, :math:`\frac{1}{P}\sum_r S_r/D_r`, which is what
:class:`torch.nn.parallel.DistributedDataParallel` does with a ``mean`` loss, agrees
only when every :math:`D_r = D/P`.

Processes come from ``torchrun`` (:func:`init_from_environment`) or from
:func:`launch`, which spawns them on 127.0.0.1 and ends every one of them when one
fails or when the time runs out. Gloo serves the CPU, NCCL serves CUDA.
"""

from __future__ import annotations

import io
import itertools
import math
import multiprocessing as mp
import os
import queue
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .device import synchronize
from .layers import Layer, Sequential
from .losses import (
    _batched,
    _ce_denominator,
    _is_prob_target,
    cross_entropy_forward_backward,
)
from .train import Tensors, backward, batch_indices, evaluate, mlp, prepare, sgd_step, torch_mlp
from .train import train_step as one_process_step

__all__ = [
    "DEFAULT_TIMEOUT",
    "EpochRecord",
    "Problem",
    "TrainConfig",
    "WorkerError",
    "all_reduce_gradients",
    "backend_for",
    "compare_gradients",
    "counted_weight",
    "ddp_gradients",
    "fit",
    "flat_gradients",
    "flat_parameters",
    "free_port",
    "global_cross_entropy",
    "in_sequence",
    "init_from_environment",
    "launch",
    "launched_by_torchrun",
    "naive_cross_entropy",
    "ring_all_reduce_bytes",
    "ring_all_reduce_seconds",
    "run_in_environment_group",
    "shard",
    "train_mnist",
    "train_step",
    "trajectory",
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
        byhand.distributed.WorkerError: worker 0 of 1 failed: ValueError: math domain error
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


@contextmanager
def _process_group(backend: str, rank: int, world_size: int, port: int,
                   timeout: float) -> Iterator[None]:
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=timeout))
    try:
        yield
    finally:
        dist.destroy_process_group()


def _worker(fn: Callable[..., Any], args: Sequence[Any], rank: int, world_size: int,
            port: int, backend: str, timeout: float, threads: int, results: Any) -> None:
    """Body of a spawned process: join the group, run ``fn(*args)``, report to the parent."""
    torch.set_num_threads(threads)
    try:
        with _process_group(backend, rank, world_size, port, timeout):
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
    threads = max(1, (os.cpu_count() or 1) // processes)
    port = free_port()
    collective_timeout = collective_timeout or (timeout if math.isfinite(timeout)
                                                else DEFAULT_TIMEOUT)
    workers = [context.Process(
        target=_worker, daemon=True, name=f"byhand-rank-{rank}",
        args=(fn, tuple(args), rank, processes, port, backend,
              collective_timeout, threads, results))
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


# ------------------------------------------------------------------------ the ring


def ring_all_reduce_bytes(nbytes: float, processes: int) -> float:
    r"""Bytes each rank sends (and receives) in a ring all-reduce of ``nbytes``: :math:`2\frac{P-1}{P}M`.

    The vector is cut into :math:`P` chunks; :math:`P-1` steps of reduce-scatter and
    :math:`P-1` steps of all-gather each pass one chunk of :math:`M/P` bytes to the
    next rank on the ring.

    Examples:
        >>> ring_all_reduce_bytes(1e6, processes=4), ring_all_reduce_bytes(1e6, processes=1)
        (1500000.0, 0.0)
    """
    if processes < 1:
        raise ValueError(f"ring_all_reduce_bytes: processes must be positive; got {processes}")
    return 2 * (processes - 1) / processes * nbytes


def ring_all_reduce_seconds(nbytes: float, processes: int, bandwidth: float,
                            latency: float) -> float:
    r"""The ring's time on paper: :math:`2(P-1)\alpha + 2\frac{P-1}{P}\frac{M}{\beta}`.

    ``bandwidth`` :math:`\beta` in bytes per second per rank and direction, ``latency``
    :math:`\alpha` in seconds per step; :math:`2(P-1)` steps of one chunk each.

    Examples:
        >>> round(ring_all_reduce_seconds(4e8, processes=8, bandwidth=1e10, latency=1e-5), 6)
        0.07014
    """
    return (2 * (processes - 1) * latency
            + ring_all_reduce_bytes(nbytes, processes) / bandwidth)


# ---------------------------------------------------------------------------- shards


def shard(rows: Tensor, rank: int | None = None, world_size: int | None = None) -> Tensor:
    """The rows of a minibatch that ``rank`` computes: the ``rank``-th of ``world_size``
    contiguous, nearly equal pieces (``torch.tensor_split``).

    Every rank draws the same seeded order, so the shards of all ranks, in rank order,
    are exactly the minibatch one process would see; an uneven batch gives the first
    ``len(rows) % world_size`` ranks one row more, and a rank may get no row at all.

    Examples:
        >>> [shard(torch.arange(10), rank, world_size=4) for rank in range(4)]
        [tensor([0, 1, 2]), tensor([3, 4, 5]), tensor([6, 7]), tensor([8, 9])]
    """
    rank = dist.get_rank() if rank is None else rank
    world_size = dist.get_world_size() if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"shard: rank must be in [0, {world_size - 1}]; got {rank}")
    return torch.tensor_split(rows, world_size)[rank]


# ------------------------------------------------------------------------- the mean


def counted_weight(input: Tensor, target: Tensor, weight: Tensor | None = None,
                   ignore_index: int = -100) -> Tensor:
    r"""The denominator of a ``mean`` cross-entropy on these rows: :math:`D = \sum_n \mu_n w_{y_n}`.

    For probability targets it is the number of sample positions. Returned as a
    0-dimensional tensor in the input's dtype, on its device.

    Examples:
        >>> x, y = torch.zeros(4, 3), torch.tensor([0, 2, -100, 2])
        >>> counted_weight(x, y), counted_weight(x, y, weight=torch.tensor([1.0, 1.0, 0.5]))
        (tensor(3.), tensor(2.))
    """
    x, t = _batched(input, target)
    value = _ce_denominator(x, t, weight, ignore_index, _is_prob_target(x, t))
    return torch.as_tensor(value, dtype=x.dtype, device=x.device)


def global_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         ignore_index: int = -100, label_smoothing: float = 0.0,
                         group: Any = None) -> tuple[Tensor, Tensor]:
    r"""The mean cross-entropy over the rows of *all* ranks, and this rank's logit gradient.

    Each rank forms :math:`S_r = \sum_{n \in B_r} L_n` and :math:`D_r` (see
    :func:`counted_weight`); one all-reduce of the pair gives :math:`S` and :math:`D`,
    and the result is :math:`L = S/D` with
    :math:`\partial L/\partial x_{nj} = D^{-1}\,\partial S_r/\partial x_{nj}` for this
    rank's rows: exactly the rows of the one-process gradient, for every option.

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> x, y = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), torch.tensor([0, -100])
        >>> loss, grad = global_cross_entropy(x, y)
        >>> torch.allclose(loss, torch.nn.functional.cross_entropy(x, y)), grad.shape
        (True, torch.Size([2, 3]))
        >>> dist.destroy_process_group()
    """
    loss_sum, grad = cross_entropy_forward_backward(
        input, target, weight, ignore_index, reduction="sum", label_smoothing=label_smoothing)
    totals = torch.stack([loss_sum.to(input.dtype),
                          counted_weight(input, target, weight, ignore_index)])
    dist.all_reduce(totals, group=group)
    return totals[0] / totals[1], grad.div_(totals[1])


def naive_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                        ignore_index: int = -100, label_smoothing: float = 0.0,
                        group: Any = None) -> tuple[Tensor, Tensor]:
    r"""The average of the per-rank means, :math:`\frac{1}{P}\sum_r S_r/D_r`, and its logit gradient.

    This is the loss that averaging per-rank ``mean`` gradients optimises (what
    ``DistributedDataParallel`` does): each rank's rows get
    :math:`(P D_r)^{-1}\,\partial S_r/\partial x_{nj}`, which equals the one-process
    gradient only when :math:`D_r = D/P` on every rank. Kept to measure that error.

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> x, y = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), torch.tensor([0, 1])
        >>> loss, grad = naive_cross_entropy(x, y)
        >>> torch.allclose(loss, torch.nn.functional.cross_entropy(x, y))
        True
        >>> dist.destroy_process_group()
    """
    local, grad = cross_entropy_forward_backward(
        input, target, weight, ignore_index, reduction="mean", label_smoothing=label_smoothing)
    world_size = dist.get_world_size(group)
    total = local.detach().clone()
    dist.all_reduce(total, group=group)
    return total / world_size, grad.div_(world_size)


# --------------------------------------------------------------------- the gradients


def flat_gradients(model: Layer) -> Tensor:
    """Every parameter gradient of ``model``, flattened into one vector (in parameter order).

    Examples:
        >>> model = mlp([3, 2], seed=0)
        >>> flat_gradients(model)
        Traceback (most recent call last):
            ...
        RuntimeError: flat_gradients: a parameter has no gradient; run a backward first
        >>> _ = model.backward(model.forward(torch.ones(1, 3)))
        >>> flat_gradients(model).shape
        torch.Size([8])
    """
    return torch.cat([grad.reshape(-1) for grad in _gradients(model, "flat_gradients")])


def _gradients(model: Layer, fn: str) -> list[Tensor]:
    """Every parameter gradient of ``model``, in parameter order; each must exist."""
    grads = [grad for _, grad in model.parameters()]
    present = [grad for grad in grads if grad is not None]
    if len(present) < len(grads):
        raise RuntimeError(f"{fn}: a parameter has no gradient; run a backward first")
    return present


def all_reduce_gradients(model: Layer, group: Any = None) -> None:
    r"""Sum every parameter gradient over the ranks, in one flat bucket, in place.

    :math:`\partial L/\partial\theta = \sum_r \sum_{n \in B_r}
    (\partial L/\partial x_{nj})(\partial x_{nj}/\partial\theta)`: the logit gradients
    already carry the global :math:`1/D`, so the ranks' gradients are added, not
    averaged. One ``all_reduce`` of one contiguous vector instead of one per tensor.

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> model = mlp([3, 2], seed=0); _ = model.forward(torch.ones(1, 3))
        >>> _ = model.backward(torch.ones(1, 2))
        >>> all_reduce_gradients(model)
        >>> flat_gradients(model)
        tensor([1., 1., 1., 1., 1., 1., 1., 1.])
        >>> dist.destroy_process_group()
    """
    bucket = flat_gradients(model)
    dist.all_reduce(bucket, group=group)
    offset = 0
    for grad in _gradients(model, "all_reduce_gradients"):
        grad.copy_(bucket[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def ddp_gradients(model: Sequential, x: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, label_smoothing: float = 0.0) -> Tensor:
    """The flat parameter gradient that ``DistributedDataParallel`` with ``F.cross_entropy``
    (``mean``) gives for this rank's rows ``x``: the autograd reference of the naive average.

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> model, x, y = mlp([3, 4, 2], seed=0), torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([1])
        >>> _, grad = cross_entropy_forward_backward(model.forward(x), y); _ = model.backward(grad)
        >>> torch.allclose(ddp_gradients(model, x, y), flat_gradients(model))
        True
        >>> dist.destroy_process_group()
    """
    net = torch_mlp(model)
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    loss = torch.nn.functional.cross_entropy(ddp(x), target, weight=weight,
                                             ignore_index=ignore_index,
                                             label_smoothing=label_smoothing)
    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
    grads = [p.grad for p in net.parameters()]
    return torch.cat([grad.reshape(-1) for grad in grads if grad is not None])


@dataclass
class Problem:
    """A batch for :func:`compare_gradients`: rows ``x``, targets, the network and the options.

    Examples:
        >>> problem = Problem(torch.zeros(2, 3), torch.tensor([0, 1]), sizes=[3, 2], ignore_index=1)
        >>> problem.options()
        {'weight': None, 'ignore_index': 1, 'label_smoothing': 0.0}
    """

    x: Tensor
    target: Tensor
    sizes: list[int]
    seed: int = 0
    weight: Tensor | None = None
    ignore_index: int = -100
    label_smoothing: float = 0.0

    def options(self) -> dict[str, Any]:
        return {"weight": self.weight, "ignore_index": self.ignore_index,
                "label_smoothing": self.label_smoothing}


def _parameter_gradient(model: Layer, x: Tensor, target: Tensor, loss: Callable[..., Any],
                        options: dict[str, Any]) -> tuple[Tensor, Tensor]:
    value, grad = loss(model.forward(x), target, **options)
    backward(model, grad)
    return value, flat_gradients(model)


def compare_gradients(problems: Sequence[Problem]) -> list[dict[str, Tensor]]:
    """Worker: the parameter gradient of each problem, from one process and from all ranks.

    Every rank builds the seeded network (:func:`byhand.train.mlp`) and computes the
    one-process loss and flat gradient on the whole batch (``one``), then its
    :func:`shard` of the rows gives the data-parallel ones: the global mean
    (``global``), the average of per-rank means by hand (``naive``) and
    ``DistributedDataParallel`` with ``F.cross_entropy`` (``ddp``); the last two are
    left out when some rank has no rows (it has no mean). Also returned: each rank's
    counted weight :math:`D_r` (``counted``, one entry per rank).

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
        >>> (result,) = compare_gradients([Problem(x, torch.tensor([0, 1, 1, 0]), sizes=[3, 2])])
        >>> sorted(result), torch.allclose(result["one"], result["global"])
        (['counted', 'ddp', 'global', 'loss_global', 'loss_naive', 'loss_one', 'naive', 'one'], True)
        >>> dist.destroy_process_group()
    """
    rank, world_size = dist.get_rank(), dist.get_world_size()
    results = []
    for problem in problems:
        options = problem.options()
        model = mlp(problem.sizes, dtype=problem.x.dtype, seed=problem.seed)
        one_loss, one = _parameter_gradient(model, problem.x, problem.target,
                                            cross_entropy_forward_backward, options)
        mine = shard(torch.arange(len(problem.x)), rank, world_size)
        x, target = problem.x[mine], problem.target[mine]
        counted = torch.zeros(world_size, dtype=problem.x.dtype)
        counted[rank] = counted_weight(model.forward(x), target, problem.weight,
                                       problem.ignore_index)
        dist.all_reduce(counted)
        ours_loss, _ = _parameter_gradient(model, x, target, global_cross_entropy, options)
        all_reduce_gradients(model)
        result = {"one": one, "global": flat_gradients(model), "loss_one": one_loss,
                  "loss_global": ours_loss, "counted": counted}
        if len(problem.x) >= world_size:
            naive_loss, _ = _parameter_gradient(model, x, target, naive_cross_entropy, options)
            all_reduce_gradients(model)
            result |= {"naive": flat_gradients(model), "loss_naive": naive_loss,
                       "ddp": ddp_gradients(model, x, target, **options)}
        results.append(result)
    return results


# ------------------------------------------------------------------------- training


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    synchronize(device)
    start = time.perf_counter()
    value = fn()
    synchronize(device)
    return value, time.perf_counter() - start


def train_step(model: Layer, x: Tensor, y: Tensor, lr: float,
               group: Any = None) -> tuple[Tensor, float]:
    """One data-parallel step on this rank's rows: forward, global-mean loss and gradient,
    backward, one flat all-reduce, SGD. Returns the global loss and the seconds spent
    in the two all-reduces (the loss pair and the gradient bucket).

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> model, x, y = mlp([3, 2], seed=0), torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([1])
        >>> losses = [float(train_step(model, x, y, lr=0.1)[0]) for _ in range(3)]
        >>> losses == sorted(losses, reverse=True)
        True
        >>> dist.destroy_process_group()
    """
    logits = model.forward(x)
    (loss, grad), loss_seconds = _timed(lambda: global_cross_entropy(logits, y, group=group),
                                        x.device)
    backward(model, grad)
    _, grad_seconds = _timed(lambda: all_reduce_gradients(model, group), x.device)
    sgd_step(model, lr)
    return loss, loss_seconds + grad_seconds


def flat_parameters(model: Layer) -> Tensor:
    """Every parameter of ``model``, flattened into one new vector (in parameter order).

    Examples:
        >>> model = mlp([3, 2], seed=0)
        >>> flat_parameters(model).shape, sum(param.numel() for param, _ in model.parameters())
        (torch.Size([8]), 8)
    """
    return torch.cat([param.reshape(-1) for param, _ in model.parameters()])


def trajectory(x: Tensor, y: Tensor, sizes: Sequence[int], steps: int, batch_size: int,
               lr: float, seed: int = 0) -> Tensor | None:
    """The flat parameters before the first SGD step and after each of ``steps`` steps.

    The network is :func:`byhand.train.mlp` seeded with ``seed``, in ``x``'s dtype, and
    the batches follow the one-process order drawn from ``seed``, epoch after epoch.
    Inside a process group every rank trains on its :func:`shard` of each batch with
    :func:`train_step` and rank 0 returns the rows (the others ``None``); outside one,
    a single process trains on whole batches (:func:`byhand.train.train_step`).

    Examples:
        >>> x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
        >>> y = torch.tensor([0, 1, 1, 0, 1, 0])
        >>> rows = trajectory(x, y, sizes=[3, 2], steps=4, batch_size=3, lr=0.1)
        >>> rows.shape
        torch.Size([5, 8])
    """
    model = mlp(sizes, dtype=x.dtype, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    epochs = (batch_indices(len(x), batch_size, generator) for _ in itertools.count())
    grouped = dist.is_available() and dist.is_initialized()
    rows = [flat_parameters(model)]
    for batch in itertools.islice(itertools.chain.from_iterable(epochs), steps):
        if grouped:
            mine = shard(batch)
            train_step(model, x[mine], y[mine], lr)
        else:
            one_process_step(model, x[batch], y[batch], lr)
        rows.append(flat_parameters(model))
    return torch.stack(rows) if not grouped or dist.get_rank() == 0 else None


@dataclass
class EpochRecord:
    """What one rank measured in one epoch.

    Examples:
        >>> record = EpochRecord(2.0, 0.5, train_loss=0.3, valid_loss=0.28, valid_accuracy=0.92)
        >>> record.communication_seconds / record.seconds
        0.25
    """

    seconds: float
    communication_seconds: float
    train_loss: float
    valid_loss: float
    valid_accuracy: float


def fit(model: Layer, data: Tensors, epochs: int, batch_size: int, lr: float, seed: int,
        group: Any = None) -> list[EpochRecord]:
    """Data-parallel SGD: every epoch draws the one-process batch order from ``seed``
    (:func:`byhand.train.batch_indices`) and each rank trains on its :func:`shard` of
    every batch. The model follows the one-process run step for step; every rank
    evaluates it on the whole validation set after each epoch (the test rows are left
    for one evaluation at the end, as in :func:`byhand.train.fit`).

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> x, y = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 2
        >>> data = Tensors(x, y, x, y, x, y)
        >>> records = fit(mlp([3, 2], seed=0), data, epochs=2, batch_size=16, lr=0.1, seed=0)
        >>> len(records), 0.0 <= records[-1].valid_accuracy <= 1.0
        (2, True)
        >>> dist.destroy_process_group()
    """
    generator = torch.Generator().manual_seed(seed)
    rank, world_size = dist.get_rank(group), dist.get_world_size(group)
    device = data.x_train.device
    records = []
    for _ in range(epochs):
        losses, communication = [], 0.0
        synchronize(device)
        start = time.perf_counter()
        for rows in batch_indices(data.x_train.shape[0], batch_size, generator, device):
            mine = shard(rows, rank, world_size)
            loss, seconds = train_step(model, data.x_train[mine], data.y_train[mine], lr, group)
            losses.append(loss)
            communication += seconds
        synchronize(device)
        elapsed = time.perf_counter() - start
        valid_loss, valid_accuracy = evaluate(model, data.x_valid, data.y_valid)
        records.append(EpochRecord(elapsed, communication, float(torch.stack(losses).mean()),
                                   valid_loss, valid_accuracy))
    return records


@dataclass
class TrainConfig:
    """Everything a worker needs to train on MNIST; ``load`` is a dataset loader such as
    :func:`byhand.data.load_mnist` (importable, so it can travel to spawned processes).

    Examples:
        >>> from byhand.data import load_mnist
        >>> config = TrainConfig(load=load_mnist, limit=1000, epochs=1)
        >>> config.hidden, config.batch_size, config.lr, config.device
        ([800], 128, 0.3, 'cpu')
    """

    load: Callable[..., Any]
    root: str | None = None
    limit: int | None = None
    hidden: list[int] = field(default_factory=lambda: [800])
    epochs: int = 8
    batch_size: int = 128
    lr: float = 0.3
    seed: int = 0
    device: str = "cpu"


def _rank_device(device: str) -> torch.device:
    if torch.device(device).type != "cuda":
        return torch.device(device)
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    if local >= torch.cuda.device_count():
        raise RuntimeError(f"rank {dist.get_rank()} needs GPU {local}; "
                           f"only {torch.cuda.device_count()} are visible")
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def train_mnist(config: TrainConfig) -> dict[str, Any]:
    """The worker of ``python -m byhand.mnist --processes P``: load, train, report.

    Every rank loads the dataset, builds the same seeded network and trains on its
    shards. Returns the dataset name, the sizes, the per-epoch records (as dicts), and
    the test loss and accuracy, measured once after the last epoch.

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> from byhand.data import load_mnist
        >>> report = train_mnist(TrainConfig(load=load_mnist, limit=512, hidden=[16], epochs=1))
        >>> report["dataset"], report["processes"], report["parameters"]
        ('mnist', 1, 12730)
        >>> report["train_images"] + report["valid_images"], report["test_images"]
        (512, 512)
        >>> dist.destroy_process_group()
    """
    device = _rank_device(config.device)
    dataset = config.load(root=config.root)
    data = prepare(dataset, device=device, limit=config.limit)
    sizes = [data.x_train.shape[1], *config.hidden, len(dataset.classes)]
    model = mlp(sizes, device=device, seed=config.seed)
    records = fit(model, data, config.epochs, config.batch_size, config.lr, config.seed)
    test_loss, test_accuracy = evaluate(model, data.x_test, data.y_test)
    return {"dataset": dataset.name, "device": str(device),
            "processes": dist.get_world_size(),
            "train_images": int(data.x_train.shape[0]), "valid_images": int(data.x_valid.shape[0]),
            "test_images": int(data.x_test.shape[0]),
            "epochs": [vars(record) for record in records],
            "test_loss": test_loss, "test_accuracy": test_accuracy,
            "parameters": sum(p.numel() for p, _ in model.parameters()),
            "threads": torch.get_num_threads()}
