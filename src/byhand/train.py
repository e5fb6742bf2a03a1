r"""One training loop, :func:`fit`: a model, a step, data and a small config.

:func:`fit` trains for ``config.epochs`` epochs (:func:`train_epoch`) and evaluates on
the validation rows after each (:func:`byhand.evaluation.evaluate`). Each minibatch
goes through a *step*, ``step(x, y) -> loss`` (:mod:`byhand.steps`): by default
:func:`~byhand.steps.train_step`, the hand-written forward, backward and SGD update
:math:`\theta_k \leftarrow \theta_k - \eta\, \partial L/\partial \theta_k`; the
autograd twin (:func:`~byhand.steps.torch_trainer`) and data-parallel training
(:class:`byhand.distributed.DataParallelStep`) are other steps handed to the same loop.
Every epoch draws a seeded permutation of the training rows, moved to the device once
per epoch, not per step (:func:`byhand.preprocess.batch_indices`), and slices minibatches
out of it on the device: no ``DataLoader``, and no copy between host and device
inside an epoch. The test rows are never used here; the caller evaluates on them once,
at the end. Nothing in the loop uses autograd unless the step does.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from .deprecation import moved
from .device import synchronize
from .evaluation import confusion_matrix as confusion_matrix
from .evaluation import evaluate
from .evaluation import predict as predict
from .layers import Layer
from .layers import mlp as mlp  # re-exported: chapter 9 and 0.1.0 import it from here
from .layers import torch_mlp as torch_mlp
from .losses import cross_entropy_forward_backward
from .preprocess import Tensors, batch_indices
from .preprocess import normalisation as normalisation
from .preprocess import prepare as prepare
from .preprocess import split_indices as split_indices
from .steps import LossFn, StepFn, hand_trainer
from .steps import backward as backward
from .steps import sgd_step as sgd_step
from .steps import torch_step as torch_step
from .steps import torch_trainer as torch_trainer
from .steps import train_step as train_step

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_HIDDEN",
    "DEFAULT_LR",
    "DEFAULT_SEED",
    "EpochData",
    "History",
    "LossFn",
    "Progress",
    "StepFn",
    "TrainConfig",
    "backward",
    "confusion_matrix",
    "evaluate",
    "fit",
    "hand_trainer",
    "predict",
    "sgd_step",
    "torch_step",
    "torch_trainer",
    "train_epoch",
    "train_step",
]

# The defaults of ``python -m byhand.mnist``: 784-800-10, batches of 128, learning rate 0.3,
# 8 epochs, chosen on the 10,000 validation rows (never on the test set). Chapter 9 reruns
# the choice (learning rates 0.1, 0.3 and 1.0) and reports the measured accuracy and time.
DEFAULT_HIDDEN: tuple[int, ...] = (800,)
DEFAULT_EPOCHS = 8
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR = 0.3
DEFAULT_SEED = 0

EpochData = tuple[Tensor, Tensor] | Tensors
"""What one epoch trains on, ``(x, y)`` or :class:`~byhand.preprocess.Tensors` (its training rows)."""


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains: epochs, minibatch size, learning rate of the default step, seed.

    ``lr`` builds the default step (:func:`train_step`); a step given to :func:`fit`
    carries its own. ``stop_at_accuracy`` ends training after the first epoch whose
    validation accuracy reaches it.

    Examples:
        >>> TrainConfig(epochs=2)
        TrainConfig(epochs=2, batch_size=128, lr=0.3, seed=0, stop_at_accuracy=None)
    """

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    seed: int = DEFAULT_SEED
    stop_at_accuracy: float | None = None


class Progress:
    """The one progress mechanism: a tqdm bar over minibatches, advanced by calling it.

    A text bar written to something other than a terminal (a log file, a notebook
    without widgets) cannot redraw itself in place, so it is refreshed every few
    seconds instead of twice a second. ``note`` labels it (epoch, loss, accuracy).

    Examples:
        >>> bar = Progress(3, "epoch")
        >>> bar(); bar(); bar.note(loss="0.5")
        >>> bar.bar.n
        2
        >>> bar.close()
    """

    def __init__(self, total: int, desc: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tqdm.auto warns when it falls back to text bars
            from tqdm import autonotebook, std
            from tqdm.auto import tqdm
        redraws = autonotebook.tqdm is not std.tqdm or sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, unit="batch",
                        mininterval=0.5 if redraws else 5.0)

    def __call__(self) -> None:
        self.bar.update()

    def note(self, **fields: str) -> None:
        self.bar.set_postfix(**fields)

    def close(self) -> None:
        self.bar.close()


def train_epoch(
    model: Layer | torch.nn.Module,
    data: EpochData | Tensor,
    config: TrainConfig | Tensor | None = None,
    *legacy: Any,
    step: StepFn | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[], object] | None = None,
    **legacy_settings: Any,
) -> Tensor:
    """One pass over the training rows in minibatches of a seeded permutation; each step's loss.

    Each minibatch of ``config.batch_size`` rows goes through ``step(x, y)``; without
    one, through :func:`~byhand.steps.hand_trainer` of ``model`` with ``config.lr``.
    The permutation comes from ``generator`` (default: one seeded with ``config.seed``).
    The losses stay on the device (one tensor of shape ``(steps,)``): the loop itself
    reads nothing back from the device. ``on_step`` is called after every step (a
    :class:`Progress`, say). The 0.1.0 form ``train_epoch(model, x, y, batch_size, lr,
    generator, progress=False, loss_fn=..., on_step=None, step=None)`` still works and
    warns (:class:`DeprecationWarning`).

    Examples:
        >>> model = mlp([4, 3, 2], seed=0)
        >>> x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
        >>> y = torch.arange(10) % 2
        >>> losses = train_epoch(model, (x, y), TrainConfig(batch_size=4, lr=0.1))
        >>> losses.shape, losses
        (torch.Size([3]), tensor([0.9379, 0.7557, 0.4785]))
    """
    if isinstance(data, Tensor):
        return _train_epoch_v010(model, data, config, *legacy, step=step, generator=generator,
                                 on_step=on_step, **legacy_settings)
    if legacy or legacy_settings or isinstance(config, Tensor):
        raise TypeError("train_epoch(model, data, config, *, step=None, generator=None, "
                        f"on_step=None): unexpected arguments {legacy or tuple(legacy_settings)}")
    config = config or TrainConfig()
    x, y = (data.x_train, data.y_train) if isinstance(data, Tensors) else data
    step = hand_trainer(_layer(model), config.lr) if step is None else step
    generator = torch.Generator().manual_seed(config.seed) if generator is None else generator
    steps = math.ceil(x.shape[0] / config.batch_size)
    losses = torch.empty(steps, dtype=x.dtype, device=x.device)
    for i, idx in enumerate(batch_indices(x.shape[0], config.batch_size, generator, x.device)):
        losses[i] = step(x[idx], y[idx])
        if on_step is not None:
            on_step()
    return losses


def _layer(model: Layer | torch.nn.Module) -> Layer:
    """``model`` if it can take the default step; a torch module trains through ``step=``."""
    if not isinstance(model, Layer):
        raise TypeError("train_epoch: model must be a byhand Layer when no step is given "
                        f"(a torch module trains through step=torch_trainer(...)); "
                        f"got {type(model).__name__}")
    return model


_V010_SIGNATURE = inspect.Signature(
    [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
     for name in ("model", "x", "y", "batch_size", "lr", "generator")]
    + [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
       for name, default in (("progress", False), ("loss_fn", cross_entropy_forward_backward),
                             ("on_step", None), ("step", None))]
)
"""The signature of ``train_epoch`` in 0.1.0, used only to bind an old call."""


def _train_epoch_v010(*args: Any, **kwargs: Any) -> Tensor:
    """Run a 0.1.0 call of :func:`train_epoch` through the new form, with a warning."""
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    old = _V010_SIGNATURE.bind(*args, **kwargs)
    old.apply_defaults()
    a = old.arguments
    warnings.warn("train_epoch(model, x, y, batch_size, lr, generator, ...) is deprecated; use "
                  "train_epoch(model, (x, y), TrainConfig(batch_size=..., lr=...), "
                  "generator=..., step=hand_trainer(model, lr, loss_fn))",
                  DeprecationWarning, stacklevel=3)
    step = a["step"] or hand_trainer(_layer(a["model"]), a["lr"], a["loss_fn"])
    bar = Progress(math.ceil(a["x"].shape[0] / a["batch_size"]), "epoch") if a["progress"] else None
    callbacks = [f for f in (bar, a["on_step"]) if f is not None]
    losses = train_epoch(a["model"], (a["x"], a["y"]), TrainConfig(batch_size=a["batch_size"]),
                         step=step, generator=a["generator"],
                         on_step=lambda: [callback() for callback in callbacks])
    if bar is not None:
        bar.close()
    return losses


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch (``step_loss``: one per minibatch).

    ``train_loss`` is the mean of the epoch's minibatch losses (each taken before its
    update); ``valid_loss`` and ``valid_accuracy`` are measured on the validation rows
    after the epoch; ``seconds`` is the epoch's training time, evaluation excluded.

    Examples:
        >>> h = History(train_loss=[0.9, 0.5], valid_loss=[0.8, 0.6],
        ...             valid_accuracy=[0.7, 0.9], seconds=[1.5, 2.0])
        >>> h.epochs, h.total_seconds, h.epochs_to(0.8), h.seconds_to(0.8), h.seconds_to(0.95)
        (2, 3.5, 2, 3.5, None)
    """

    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    valid_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """How many epochs ran."""
        return len(self.train_loss)

    @property
    def total_seconds(self) -> float:
        """Training time summed over the epochs (evaluation excluded)."""
        return float(sum(self.seconds))

    def epochs_to(self, accuracy: float) -> int | None:
        """The first epoch (counted from 1) whose validation accuracy reaches ``accuracy``."""
        return next((i + 1 for i, a in enumerate(self.valid_accuracy) if a >= accuracy), None)

    def seconds_to(self, accuracy: float) -> float | None:
        """Training seconds up to the end of :meth:`epochs_to`, or None if never reached."""
        epochs = self.epochs_to(accuracy)
        return None if epochs is None else float(sum(self.seconds[:epochs]))

    def to_dict(self) -> dict[str, list[float]]:
        """A JSON-ready copy of every list."""
        return asdict(self)


def fit(
    model: Layer | torch.nn.Module,
    data: Tensors,
    config: TrainConfig | None = None,
    *,
    step: StepFn | None = None,
    progress: bool | None = None,
    loss_fn: LossFn | None = None,
    **settings: Any,
) -> History:
    """Train ``model`` for ``config.epochs`` epochs of minibatch steps, validating after each.

    Batches come from a ``torch.Generator`` seeded with ``config.seed``; a
    ``batch_size`` equal to the number of training rows is full-batch gradient descent.
    Each minibatch goes through ``step(x, y)``: by default
    :func:`~byhand.steps.hand_trainer` of ``model`` with ``config.lr``; the autograd
    twin is ``step=torch_trainer(net, lr)`` with ``model=net``, data parallelism
    ``step=DataParallelStep(model, lr)``. Keyword ``settings`` (``epochs=3``,
    ``lr=0.5``, ...) replace fields of ``config``. After every epoch the model is
    evaluated on the validation rows. ``progress`` shows one :class:`Progress` bar over
    all minibatches; None (the default) shows it only when stderr is a terminal.
    ``loss_fn`` is deprecated: pass ``step=hand_trainer(model, lr, loss_fn)``.

    Examples:
        >>> gen = torch.Generator().manual_seed(0)
        >>> x = torch.randn(16, 4, generator=gen)
        >>> y = (x[:, 0] > 0).long()
        >>> data = Tensors(x[:12], y[:12], x[12:], y[12:], x[12:], y[12:])
        >>> history = fit(mlp([4, 8, 2], seed=0), data, epochs=3, batch_size=4, lr=0.5)
        >>> history.epochs, len(history.step_loss), [round(a, 2) for a in history.train_loss]
        (3, 9, [0.67, 0.49, 0.4])
        >>> fit(mlp([4, 2], seed=0), data, epochs=0)
        Traceback (most recent call last):
            ...
        ValueError: fit: epochs must be positive; got 0
    """
    config = _config(config, settings, given_step=step is not None)
    step = _fit_step(model, config, step, loss_fn)
    generator = torch.Generator().manual_seed(config.seed)
    steps = math.ceil(data.x_train.shape[0] / config.batch_size)
    show = sys.stderr.isatty() if progress is None else progress
    bar = Progress(config.epochs * steps, "training") if show else None
    history = History()
    for epoch in range(1, config.epochs + 1):
        start = _synchronized_clock(data.x_train.device)
        losses = train_epoch(model, data, config, step=step, generator=generator, on_step=bar)
        _record(history, model, data, losses, _synchronized_clock(data.x_train.device) - start)
        if bar is not None:
            bar.note(epoch=f"{epoch}/{config.epochs}", loss=f"{history.train_loss[-1]:.4f}",
                     valid_acc=f"{history.valid_accuracy[-1]:.4f}")
        stop = config.stop_at_accuracy
        if stop is not None and history.valid_accuracy[-1] >= stop:
            break
    if bar is not None:
        bar.close()
    return history


def _synchronized_clock(device: torch.device) -> float:
    """Seconds on a monotonic clock, read once the device has finished its queued work."""
    synchronize(device)
    return time.perf_counter()


def _fit_step(model: Layer | torch.nn.Module, config: TrainConfig, step: StepFn | None,
              loss_fn: LossFn | None) -> StepFn:
    """The step :func:`fit` uses: ``step``, else the hand-written one (``loss_fn`` is deprecated)."""
    if loss_fn is not None:
        warnings.warn("fit(loss_fn=...) is deprecated; pass step=hand_trainer(model, lr, loss_fn)"
                      + (" (a given step ignores loss_fn)" if step is not None else ""),
                      DeprecationWarning, stacklevel=3)
    if step is not None:
        return step
    return hand_trainer(_layer(model), config.lr, loss_fn or cross_entropy_forward_backward)


def _config(config: TrainConfig | None, settings: dict[str, Any], given_step: bool) -> TrainConfig:
    """``config`` with ``settings`` applied, checked; ``lr`` beside a step is deprecated."""
    config = dataclasses.replace(config or TrainConfig(), **settings)
    if given_step and "lr" in settings:
        warnings.warn("fit: lr is used by the default step only; a given step carries its "
                      "own learning rate (lr is ignored here)", DeprecationWarning, stacklevel=3)
    if config.epochs < 1:
        raise ValueError(f"fit: epochs must be positive; got {config.epochs}")
    if config.batch_size < 1:
        raise ValueError(f"fit: batch_size must be positive; got {config.batch_size}")
    return config


def _record(history: History, model: Layer | torch.nn.Module, data: Tensors, losses: Tensor,
            seconds: float) -> None:
    """Evaluate on the validation rows and append one epoch's figures to ``history``."""
    valid_loss, valid_accuracy = evaluate(model, data.x_valid, data.y_valid)
    history.step_loss.extend(losses.tolist())
    history.train_loss.append(float(losses.mean()))
    history.valid_loss.append(valid_loss)
    history.valid_accuracy.append(valid_accuracy)
    history.seconds.append(seconds)


#: ``step_timings`` moved to :mod:`byhand.timing`: a deprecated alias for one release.
__getattr__ = moved("byhand.train", {"step_timings": "byhand.timing"})
