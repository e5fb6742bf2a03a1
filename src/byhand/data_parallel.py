"""Chapter 11's experiments with data parallelism, and the MNIST worker of ``byhand.mnist``.

:func:`compare_gradients` sets the gradient of the global mean, of the naive average
of per-rank means and of ``DistributedDataParallel`` beside the one-process gradient;
:func:`trajectory` follows the parameters step by step; :func:`train_mnist` trains on
MNIST in one process or in every rank of a group, through :func:`byhand.train.fit`
with a :class:`~byhand.distributed.DataParallelStep`. Run the workers with
:func:`byhand.launcher.launch`. The mathematics is in :mod:`byhand.distributed`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .distributed import (
    DataParallelStep,
    all_reduce_gradients,
    counted_weight,
    flat_gradients,
    flat_parameters,
    global_cross_entropy,
    naive_cross_entropy,
    shard,
)
from .layers import Layer, Sequential, mlp, torch_mlp
from .losses import cross_entropy_forward_backward
from .preprocess import Tensors, batch_indices, prepare
from .train import DEFAULT_HIDDEN, History, TrainConfig, backward, evaluate, fit, train_step

__all__ = [
    "EpochRecord",
    "GradientProblem",
    "MnistRun",
    "compare_gradients",
    "ddp_gradients",
    "train_mnist",
    "trajectory",
]


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
class GradientProblem:
    """A batch for :func:`compare_gradients`: rows ``x``, targets, the network and the options.

    Examples:
        >>> problem = GradientProblem(torch.zeros(2, 3), torch.tensor([0, 1]), sizes=[3, 2], ignore_index=1)
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


def compare_gradients(problems: Sequence[GradientProblem]) -> list[dict[str, Tensor]]:
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
        >>> (result,) = compare_gradients([GradientProblem(x, torch.tensor([0, 1, 1, 0]), sizes=[3, 2])])
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


def trajectory(x: Tensor, y: Tensor, sizes: Sequence[int], steps: int, batch_size: int,
               lr: float, seed: int = 0) -> Tensor | None:
    """The flat parameters before the first SGD step and after each of ``steps`` steps.

    The network is :func:`byhand.train.mlp` seeded with ``seed``, in ``x``'s dtype, and
    the batches follow the one-process order drawn from ``seed``, epoch after epoch.
    Inside a process group every rank trains on its :func:`~byhand.distributed.shard` of
    each batch (:class:`~byhand.distributed.DataParallelStep`) and rank 0 returns the rows
    (the others ``None``); outside one, a single process trains on whole batches
    (:func:`byhand.train.train_step`).

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
    step = DataParallelStep(model, lr) if grouped else None
    rows = [flat_parameters(model)]
    for batch in itertools.islice(itertools.chain.from_iterable(epochs), steps):
        if step is not None:
            step(x[batch], y[batch])
        else:
            train_step(model, x[batch], y[batch], lr)
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


def _records(history: History, communication: list[float]) -> list[EpochRecord]:
    """One :class:`EpochRecord` per epoch of ``history``; ``communication`` holds one entry per step."""
    steps = len(history.step_loss) // max(1, history.epochs)
    return [EpochRecord(history.seconds[i], sum(communication[i * steps:(i + 1) * steps]),
                        history.train_loss[i], history.valid_loss[i], history.valid_accuracy[i])
            for i in range(history.epochs)]


@dataclass
class MnistRun:
    """Everything a worker needs to train on MNIST: the data, the network and a
    :class:`byhand.train.TrainConfig`. ``load`` is a dataset loader such as
    :func:`byhand.data.load_mnist` (importable, so it can travel to spawned processes).

    Examples:
        >>> from byhand.data import load_mnist
        >>> run = MnistRun(load=load_mnist, limit=1000, train=TrainConfig(epochs=1))
        >>> run.hidden, run.train.batch_size, run.train.lr, run.device
        ([800], 128, 0.3, 'cpu')
    """

    load: Callable[..., Any]
    root: str | None = None
    limit: int | None = None
    hidden: list[int] = field(default_factory=lambda: list(DEFAULT_HIDDEN))
    device: str = "cpu"
    train: TrainConfig = field(default_factory=TrainConfig)


def _rank_device(device: str) -> torch.device:
    if torch.device(device).type != "cuda" or not dist.is_initialized():
        return torch.device(device)
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    if local >= torch.cuda.device_count():
        raise RuntimeError(f"rank {dist.get_rank()} needs GPU {local}; "
                           f"only {torch.cuda.device_count()} are visible")
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def train_mnist(run: MnistRun, progress: bool = False) -> dict[str, Any]:
    """Load, train, report: the worker of ``python -m byhand.mnist``, for one process or many.

    Inside a process group every rank loads the dataset, builds the same seeded network
    and trains on its shards (:class:`~byhand.distributed.DataParallelStep`); outside
    one, a single process trains with :func:`byhand.train.train_step`. Both go through
    :func:`byhand.train.fit`. Returns the dataset name, the sizes, the per-epoch records
    (as dicts), and the test loss and accuracy, measured once after the last epoch.

    Examples:
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> from byhand.data import load_mnist
        >>> report = train_mnist(MnistRun(load=load_mnist, limit=512, hidden=[16],
        ...                               train=TrainConfig(epochs=1)))
        >>> report["dataset"], report["processes"], report["parameters"]
        ('mnist', 1, 12730)
        >>> report["train_images"] + report["valid_images"], report["test_images"]
        (512, 512)
        >>> dist.destroy_process_group()
    """
    if not isinstance(run, MnistRun):  # a 0.1.0 TrainConfig of this module
        run = _from_legacy(run)
    device = _rank_device(run.device)
    dataset = run.load(root=run.root)
    data = prepare(dataset, device=device, limit=run.limit)
    sizes = [data.x_train.shape[1], *run.hidden, len(dataset.classes)]
    model = mlp(sizes, device=device, seed=run.train.seed)
    grouped = dist.is_available() and dist.is_initialized()
    step = DataParallelStep(model, run.train.lr) if grouped else None
    history = fit(model, data, run.train, step=step, progress=progress and not grouped)
    test_loss, test_accuracy = evaluate(model, data.x_test, data.y_test)
    communication = step.communication_seconds if step is not None else []
    return {"dataset": dataset.name, "device": str(device),
            "processes": dist.get_world_size() if grouped else 1,
            "train_images": int(data.x_train.shape[0]), "valid_images": int(data.x_valid.shape[0]),
            "test_images": int(data.x_test.shape[0]),
            "epochs": [vars(record) for record in _records(history, communication)],
            "test_loss": test_loss, "test_accuracy": test_accuracy,
            "parameters": sum(p.numel() for p, _ in model.parameters()),
            "threads": torch.get_num_threads()}


# ------------------------------------------------------------ 0.1.0 names, deprecated


@dataclass
class TrainConfig01:
    """The 0.1.0 ``byhand.distributed.TrainConfig``: :class:`MnistRun` with the training fields flat."""

    load: Callable[..., Any]
    root: str | None = None
    limit: int | None = None
    hidden: list[int] = field(default_factory=lambda: list(DEFAULT_HIDDEN))
    epochs: int = TrainConfig.epochs
    batch_size: int = TrainConfig.batch_size
    lr: float = TrainConfig.lr
    seed: int = TrainConfig.seed
    device: str = "cpu"


def _from_legacy(config: TrainConfig01) -> MnistRun:
    return MnistRun(config.load, config.root, config.limit, list(config.hidden), config.device,
                    TrainConfig(config.epochs, config.batch_size, config.lr, config.seed))


def _legacy_fit(model: Layer, data: Tensors, epochs: int, batch_size: int, lr: float, seed: int,
                group: Any = None) -> list[EpochRecord]:
    """0.1.0's ``distributed.fit``: :func:`byhand.train.fit` with a data-parallel step.

    Its seven parameters mirror 0.1.0's public signature, kept as it was for one release
    (reached as ``byhand.distributed.fit``, with a warning); new code calls
    :func:`byhand.train.fit` with a :class:`~byhand.train.TrainConfig` and a
    :class:`~byhand.distributed.DataParallelStep`.
    """
    step = DataParallelStep(model, lr, group)
    history = fit(model, data, TrainConfig(epochs, batch_size, lr, seed), step=step, progress=False)
    return _records(history, step.communication_seconds)


def _legacy_train_step(model: Layer, x: Tensor, y: Tensor, lr: float,
                       group: Any = None) -> tuple[Tensor, float]:
    """0.1.0's ``distributed.train_step`` on this rank's rows: the loss and the all-reduce seconds."""
    step = DataParallelStep(model, lr, group)
    world_size = dist.get_world_size(group)
    loss = step(torch.cat([x] * world_size), torch.cat([y] * world_size))
    return loss, step.communication_seconds[-1]


_LEGACY = {"TrainConfig": TrainConfig01, "fit": _legacy_fit, "train_step": _legacy_train_step,
           "Problem": GradientProblem}


def __getattr__(name: str) -> Any:
    """0.1.0 names reached through :mod:`byhand.distributed`: deprecated, for one release."""
    if name not in _LEGACY:
        raise AttributeError(f"module 'byhand.data_parallel' has no attribute {name!r}")
    return _LEGACY[name]
