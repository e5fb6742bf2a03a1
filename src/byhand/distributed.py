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

This module holds that mathematics and the collectives it needs. Training with it is
a step handed to the one loop, :func:`byhand.train.fit`: :class:`DataParallelStep`
(this rank's shard, the global mean, one all-reduce of the gradients, SGD). The
processes come from ``torchrun`` or :func:`byhand.launcher.launch`; chapter 11's
experiments live in :mod:`byhand.data_parallel`.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .cross_entropy_core import CrossEntropyOptions, batched, denominator
from .deprecation import moved
from .device import synchronize
from .layers import Layer
from .linear_cross_entropy import linear_cross_entropy
from .losses import cross_entropy_forward_backward
from .train import train_step

__all__ = [
    "DataParallelStep",
    "all_reduce_gradients",
    "counted_weight",
    "flat_gradients",
    "flat_parameters",
    "global_cross_entropy",
    "naive_cross_entropy",
    "output_layer_means",
    "ring_all_reduce_bytes",
    "ring_all_reduce_seconds",
    "shard",
]


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
    x, t = batched(input, target)
    value = denominator(x, t, CrossEntropyOptions(weight, ignore_index))
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
    # D = 0 only when every weight that counts is 0 (every target ignored, say): the
    # gradient is then 0 already, and stays 0, as in one process, instead of 0/0.
    safe = torch.where(totals[1] == 0, torch.ones_like(totals[1]), totals[1])
    return totals[0] / totals[1], grad.div_(safe)


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


def output_layer_means(input: Tensor, linear_weight: Tensor, target: Tensor,
                       group: Any = None) -> dict[str, Tensor]:
    r"""Worker: the mean of :func:`byhand.linear_cross_entropy` over all ranks' rows, two ways.

    Every rank holds the whole batch and takes its :func:`shard`. ``"global"`` divides
    this rank's sum by the all-reduced count :math:`D` (``denominator=``), so the
    all-reduced losses and weight gradients are the one-process mean's; ``"naive"``
    averages the ranks' local means, as ``DistributedDataParallel`` does. Each entry is
    ``(loss, weight gradient)`` after the all-reduce; ``"one"`` is one process's.

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> a, w, y = torch.randn(4, 3), torch.randn(5, 3), torch.tensor([0, 4, -100, 2])
        >>> out = output_layer_means(a, w, y)
        >>> torch.allclose(out["global"], out["one"]), torch.allclose(out["naive"], out["one"])
        (True, True)
        >>> dist.destroy_process_group()
    """
    w = linear_weight.detach().requires_grad_(True)
    shards = _shards(input, group)
    mine = shards[dist.get_rank(group)]

    def loss_and_grad(rows: Tensor, **kwargs: Any) -> Tensor:
        loss = linear_cross_entropy(input[rows], w, target[rows], **kwargs)
        (grad,) = torch.autograd.grad(loss, [w])
        return torch.cat([loss.detach().reshape(1), grad.flatten()])

    count = counted_weight(input[mine].new_zeros(len(mine), w.shape[0]), target[mine])
    dist.all_reduce(count, group=group)
    out = {"global": loss_and_grad(mine, denominator=count),
           "naive": loss_and_grad(mine) / dist.get_world_size(group)}
    for t in out.values():
        dist.all_reduce(t, group=group)
    out["one"] = loss_and_grad(torch.arange(input.shape[0]))
    out["counted"] = count.new_tensor([float(counted_weight(
        input[r].new_zeros(len(r), w.shape[0]), target[r])) for r in shards])
    return out


def _shards(input: Tensor, group: Any) -> list[Tensor]:
    """Every rank's rows of ``input``, in rank order."""
    world = dist.get_world_size(group)
    return [shard(torch.arange(input.shape[0]), rank, world) for rank in range(world)]


# --------------------------------------------------------------------- the gradients


def flat_gradients(model: Layer) -> Tensor:
    """Every parameter gradient of ``model``, flattened into one vector (in parameter order).

    Examples:
        >>> from byhand.layers import mlp
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
        >>> from byhand.layers import mlp
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


def flat_parameters(model: Layer) -> Tensor:
    """Every parameter of ``model``, flattened into one new vector (in parameter order).

    Examples:
        >>> from byhand.layers import mlp
        >>> model = mlp([3, 2], seed=0)
        >>> flat_parameters(model).shape, sum(param.numel() for param, _ in model.parameters())
        (torch.Size([8]), 8)
    """
    return torch.cat([param.reshape(-1) for param, _ in model.parameters()])


class DataParallelStep:
    """``step(x, y)`` for :func:`byhand.train.fit`: one data-parallel SGD step on a whole minibatch.

    This rank takes its :func:`shard` of the rows, and :func:`byhand.train.train_step`
    runs with :func:`global_cross_entropy` as the loss and :func:`all_reduce_gradients`
    as the hook after the backward, so every rank applies the one-process update.
    Returns the global loss. ``communication_seconds`` collects, step by step, the
    seconds spent in the two all-reduces (the loss pair and the gradient bucket).

    Examples:
        >>> from byhand.train import mlp
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> model, x, y = mlp([3, 2], seed=0), torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([1])
        >>> step = DataParallelStep(model, lr=0.1)
        >>> losses = [float(step(x, y)) for _ in range(3)]
        >>> losses == sorted(losses, reverse=True), len(step.communication_seconds)
        (True, 3)
        >>> dist.destroy_process_group()
    """

    def __init__(self, model: Layer, lr: float, group: Any = None) -> None:
        self.model, self.lr, self.group = model, lr, group
        self.communication_seconds: list[float] = []
        self._clock = 0.0

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        rank, world_size = dist.get_rank(self.group), dist.get_world_size(self.group)
        mine_x, mine_y = x.tensor_split(world_size)[rank], y.tensor_split(world_size)[rank]
        self._clock = 0.0
        loss = train_step(self.model, mine_x, mine_y, self.lr, loss_fn=self._loss,
                          after_backward=self._all_reduce)
        self.communication_seconds.append(self._clock)
        return loss

    def _timed(self, device: torch.device) -> _Stopwatch:
        return _Stopwatch(self, device)

    def _loss(self, logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with self._timed(logits.device):
            return global_cross_entropy(logits, y, group=self.group)

    def _all_reduce(self, model: Layer) -> None:
        device = next(iter(model.parameters()))[0].device
        with self._timed(device):
            all_reduce_gradients(model, self.group)


class _Stopwatch:
    """Add the seconds of a ``with`` block (device synchronised on both ends) to a step's clock."""

    def __init__(self, step: DataParallelStep, device: torch.device) -> None:
        self.step, self.device, self.start = step, device, 0.0

    def __enter__(self) -> None:
        synchronize(self.device)
        self.start = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        synchronize(self.device)
        self.step._clock += time.perf_counter() - self.start


_MOVED = {
    "DEFAULT_TIMEOUT": "byhand.launcher", "WorkerError": "byhand.launcher",
    "backend_for": "byhand.launcher", "free_port": "byhand.launcher",
    "in_sequence": "byhand.launcher", "init_from_environment": "byhand.launcher",
    "launch": "byhand.launcher", "launched_by_torchrun": "byhand.launcher",
    "run_in_environment_group": "byhand.launcher",
    "Problem": "byhand.data_parallel", "TrainConfig": "byhand.data_parallel",
    "EpochRecord": "byhand.data_parallel", "compare_gradients": "byhand.data_parallel",
    "ddp_gradients": "byhand.data_parallel", "fit": "byhand.data_parallel",
    "train_mnist": "byhand.data_parallel", "train_step": "byhand.data_parallel",
    "trajectory": "byhand.data_parallel",
}


#: The names 0.1.0 kept here, moved to their own modules: deprecated aliases for one release.
__getattr__ = moved("byhand.distributed", _MOVED)
