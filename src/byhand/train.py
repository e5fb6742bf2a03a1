r"""Train a multilayer perceptron on device-resident tensors with the hand-written backward.

Nothing in the loop uses autograd. For a minibatch :math:`B` of :math:`|B|` rows the
network computes logits :math:`z_{nc}`, the loss and its gradient come from one
softmax pass (:func:`byhand.losses.cross_entropy_forward_backward`),

.. math::

   L = -\frac{1}{|B|}\sum_{n \in B} \log s_{n y_n}, \qquad
   \frac{\partial L}{\partial z_{nc}} = \frac{s_{nc} - \delta_{c y_n}}{|B|},

every layer's ``backward`` turns :math:`\partial L/\partial z` into its parameter
gradients, and plain stochastic gradient descent moves every parameter
:math:`\theta_k \leftarrow \theta_k - \eta\, \partial L/\partial \theta_k`.

There is one loop, :func:`fit`: it takes a model, data (:mod:`byhand.preprocess`), a
small :class:`TrainConfig` and a ``step(x, y) -> loss``. The default step is
:func:`train_step` with the config's learning rate; the autograd twin
(:func:`torch_trainer`) and data-parallel training
(:class:`byhand.distributed.DataParallelStep`) are other steps handed to the same loop.
Every epoch draws a seeded permutation of the training rows, moved to the device once
per epoch, not per step (:func:`byhand.preprocess.batch_indices`), and slices minibatches
out of it on the device: no ``DataLoader``, and no copy between host and device
inside an epoch. :func:`fit` evaluates on the validation rows after every epoch and
may stop there; the caller evaluates on the test set once, at the end
(:func:`evaluate`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from .device import synchronize
from .layers import Layer, Linear, Sequential
from .layers import mlp as mlp  # re-exported: chapter 9 and 0.1.0 import it from here
from .layers import torch_mlp as torch_mlp
from .losses import cross_entropy, cross_entropy_forward_backward
from .preprocess import Tensors, batch_indices
from .preprocess import normalisation as normalisation
from .preprocess import prepare as prepare
from .preprocess import split_indices as split_indices

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_HIDDEN",
    "DEFAULT_LR",
    "DEFAULT_SEED",
    "History",
    "LossFn",
    "StepFn",
    "TrainConfig",
    "backward",
    "confusion_matrix",
    "evaluate",
    "fit",
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

LossFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""``loss_fn(logits, target) -> (loss, grad_logits)``: a scalar loss and its gradient."""

StepFn = Callable[[Tensor, Tensor], Tensor]
"""``step(x, y) -> loss``: one training step on a minibatch, returning its loss (a tensor)."""


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


# ------------------------------------------------------------------------------ step


def backward(model: Layer, grad_output: Tensor) -> None:
    r"""Backpropagate :math:`\partial L/\partial z` through ``model`` into its parameter gradients.

    The gradient with respect to the input images, :math:`\partial L/\partial x`, is
    never used, so when the first layer of a :class:`~byhand.layers.Sequential` is a
    :class:`~byhand.layers.Linear` only its parameter gradients are computed
    (:meth:`~byhand.layers.Linear.parameter_backward`), which saves the largest matrix
    product of the backward pass; autograd skips it too, since the images do not
    require a gradient.

    Examples:
        >>> model = mlp([4, 3, 2], seed=0)
        >>> x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
        >>> y = torch.tensor([0, 1, 0, 1, 1])
        >>> loss, grad_logits = cross_entropy_forward_backward(model(x), y)
        >>> backward(model, grad_logits)
        >>> [tuple(grad.shape) for _, grad in model.parameters()]
        [(3, 4), (3,), (2, 3), (2,)]
    """
    if not isinstance(model, Sequential) or not model.layers:
        model.backward(grad_output)
        return
    first, rest = model.layers[0], model.layers[1:]
    for layer in reversed(rest):
        grad_output = layer.backward(grad_output)
    if isinstance(first, Linear):
        first.parameter_backward(grad_output)
    else:
        first.backward(grad_output)


def sgd_step(model: Layer, lr: float) -> None:
    r"""Plain SGD, in place: :math:`\theta_k \leftarrow \theta_k - \eta\,\partial L/\partial\theta_k`.

    Computed as ``theta.add_(grad, alpha=-lr)``, the same arithmetic as
    :class:`torch.optim.SGD` without momentum or weight decay.

    Examples:
        >>> from byhand.layers import Linear
        >>> layer = Linear.from_tensors(torch.tensor([[1.0, 2.0]]), torch.tensor([0.0]))
        >>> _ = layer(torch.tensor([[1.0, -1.0]]))
        >>> _ = layer.backward(torch.ones(1, 1))
        >>> sgd_step(layer, lr=0.5)
        >>> layer.weight, layer.bias
        (tensor([[0.5000, 2.5000]]), tensor([-0.5000]))
        >>> sgd_step(Linear(2, 1), lr=0.5)
        Traceback (most recent call last):
            ...
        RuntimeError: sgd_step: a parameter has no gradient; run a backward first
    """
    for param, grad in model.parameters():
        if grad is None:
            raise RuntimeError("sgd_step: a parameter has no gradient; run a backward first")
        param.add_(grad, alpha=-lr)


def train_step(
    model: Layer, x: Tensor, y: Tensor, lr: float,
    loss_fn: LossFn = cross_entropy_forward_backward,
    after_backward: Callable[[Layer], object] | None = None,
) -> Tensor:
    """One step on one minibatch: forward, loss and its gradient, backward, SGD update.

    ``after_backward(model)`` runs between the backward and the update: data
    parallelism sums the gradients of all ranks there. Returns the minibatch loss
    (before the update) as a 0-dimensional tensor on the device; reading it with
    ``float()`` waits for the device, so callers that do not need it at once keep it
    as a tensor.

    Examples:
        >>> model = mlp([4, 3, 2], seed=0)
        >>> x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        >>> y = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
        >>> losses = [round(float(train_step(model, x, y, lr=0.5)), 4) for _ in range(3)]
        >>> losses
        [0.7585, 0.7303, 0.7121]
    """
    logits = model.forward(x)
    loss, grad_logits = loss_fn(logits, y)
    backward(model, grad_logits)
    if after_backward is not None:
        after_backward(model)
    sgd_step(model, lr)
    return loss.detach()


def torch_step(
    net: torch.nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor
) -> Tensor:
    """The same step under autograd: ``F.cross_entropy``, ``loss.backward()``, ``optimizer.step()``.

    Examples:
        >>> model = mlp([4, 3, 2], seed=0)
        >>> net = torch_mlp(model)
        >>> x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        >>> y = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
        >>> ours = train_step(model, x, y, lr=0.5)
        >>> theirs = torch_step(net, torch.optim.SGD(net.parameters(), lr=0.5), x, y)
        >>> torch.allclose(ours, theirs), torch.allclose(net[0].weight, model.layers[0].weight)
        (True, True)
    """
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()  # type: ignore[no-untyped-call]  # Tensor.backward is unannotated in torch
    optimizer.step()
    return loss.detach()


def torch_trainer(net: torch.nn.Module, lr: float) -> StepFn:
    """``step(x, y)``: :func:`torch_step` with a plain ``torch.optim.SGD(lr=lr)`` for ``net``.

    ``fit(net, data, step=torch_trainer(net, lr))`` trains the autograd twin with the
    loop, batches and evaluation that train the hand-written network.

    Examples:
        >>> net = torch_mlp(mlp([4, 3, 2], seed=0))
        >>> step = torch_trainer(net, lr=0.5)
        >>> x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        >>> step(x, torch.tensor([0, 1, 0, 1, 1, 0, 0, 1]))
        tensor(0.7585)
    """
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    return lambda x, y: torch_step(net, optimizer, x, y)


# ----------------------------------------------------------------------------- epoch


class Progress:
    """The one progress mechanism: a tqdm bar over minibatches, advanced by calling it.

    A text bar written to something other than a terminal (a log file, a notebook
    without widgets) cannot redraw itself in place, so it is refreshed every few
    seconds instead of twice a second. ``note`` labels it (epoch, loss, accuracy).
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


def _default_step(model: Layer | torch.nn.Module, lr: float, loss_fn: LossFn) -> StepFn:
    """:func:`train_step` with ``lr`` and ``loss_fn``: the step when none is given."""
    if not isinstance(model, Layer):
        raise TypeError("train_epoch: model must be a byhand Layer when no step is given "
                        f"(a torch module trains through step=torch_trainer(...)); "
                        f"got {type(model).__name__}")
    layers = model
    return lambda xb, yb: train_step(layers, xb, yb, lr, loss_fn)


def train_epoch(
    model: Layer | torch.nn.Module,
    x: Tensor,
    y: Tensor,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    progress: bool = False,
    loss_fn: LossFn = cross_entropy_forward_backward,
    on_step: Callable[[], object] | None = None,
    step: StepFn | None = None,
) -> Tensor:
    """One pass over ``(x, y)`` in minibatches of a seeded permutation; return each step's loss.

    Each minibatch goes through ``step(x, y)``; without one, through
    :func:`train_step` with ``lr`` and ``loss_fn`` (which a given step ignores). The
    losses stay on the device (one tensor of shape ``(steps,)``): the loop itself reads
    nothing back from the device. ``on_step`` is called after every step (a
    :class:`Progress`, say); ``progress=True`` makes one for this epoch.

    Examples:
        >>> model = mlp([4, 3, 2], seed=0)
        >>> x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
        >>> y = torch.arange(10) % 2
        >>> losses = train_epoch(model, x, y, 4, 0.1, torch.Generator().manual_seed(0))
        >>> losses.shape, losses
        (torch.Size([3]), tensor([0.9379, 0.7557, 0.4785]))
    """
    step = _default_step(model, lr, loss_fn) if step is None else step
    steps = math.ceil(x.shape[0] / batch_size)
    bar = Progress(steps, "epoch") if progress else None
    callbacks = [f for f in (bar, on_step) if f is not None]
    losses = torch.empty(steps, dtype=x.dtype, device=x.device)
    for i, idx in enumerate(batch_indices(x.shape[0], batch_size, generator, x.device)):
        losses[i] = step(x[idx], y[idx])
        for callback in callbacks:
            callback()
    if bar is not None:
        bar.close()
    return losses


def predict(model: Layer | torch.nn.Module, x: Tensor, batch_size: int = 10_000) -> Tensor:
    """The logits of ``model`` for every row of ``x``, ``batch_size`` rows at a time.

    ``model`` is a hand-written layer or a ``torch.nn.Module`` (run without recording
    a graph).

    Examples:
        >>> model = mlp([4, 3, 2], seed=0)
        >>> x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
        >>> logits = predict(model, x, batch_size=2)
        >>> logits.shape, torch.allclose(logits, model(x))
        (torch.Size([5, 2]), True)
        >>> predict(torch_mlp(model), x).requires_grad
        False
    """
    with torch.no_grad():
        chunks = x.split(batch_size)  # type: ignore[no-untyped-call]  # unannotated in torch
        return torch.cat([model.forward(chunk) for chunk in chunks])


def evaluate(
    model: Layer | torch.nn.Module, x: Tensor, y: Tensor, batch_size: int = 10_000
) -> tuple[float, float]:
    r"""Mean cross-entropy and accuracy on ``(x, y)``.

    .. math::

       L = -\frac{1}{N}\sum_n \log s_{n y_n}, \qquad
       \text{accuracy} = \frac{1}{N}\sum_n \big[\arg\max_c z_{nc} = y_n\big].

    Examples:
        >>> model = mlp([4, 3, 2], seed=0)
        >>> x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        >>> loss, accuracy = evaluate(model, x, torch.arange(8) % 2)
        >>> round(loss, 4), accuracy
        (0.7628, 0.5)
    """
    logits = predict(model, x, batch_size)
    loss = cross_entropy(logits, y, reduction="mean")
    accuracy = (logits.argmax(1) == y).to(torch.float64).mean()
    return float(loss), float(accuracy)


def confusion_matrix(predicted: Tensor, target: Tensor, n_classes: int = 10) -> Tensor:
    """``M[t, p]``: how many rows of true class ``t`` were predicted as ``p`` (int64, on the CPU).

    Examples:
        >>> confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), n_classes=3)
        tensor([[1, 0, 0],
                [0, 1, 0],
                [0, 1, 1]])
    """
    pairs = target.to("cpu", torch.int64) * n_classes + predicted.to("cpu", torch.int64)
    return torch.bincount(pairs, minlength=n_classes * n_classes).view(n_classes, n_classes)


# ------------------------------------------------------------------------------- fit


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


def _timed_epoch(step: StepFn, data: Tensors, config: TrainConfig, generator: torch.Generator,
                 on_step: Callable[[], object] | None) -> tuple[Tensor, float]:
    """Run one epoch of ``step``; return its step losses and its wall-clock seconds."""
    synchronize(data.x_train.device)
    start = time.perf_counter()
    losses = train_epoch(None, data.x_train, data.y_train, config.batch_size, config.lr,  # type: ignore[arg-type]
                         generator, on_step=on_step, step=step)
    synchronize(data.x_train.device)
    return losses, time.perf_counter() - start


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
    Each minibatch goes through ``step(x, y)``: by default :func:`train_step` with
    ``config.lr`` (and ``loss_fn``); the autograd twin is ``step=torch_trainer(net, lr)``
    with ``model=net``, data parallelism ``step=DataParallelStep(model, lr)``. Keyword
    ``settings`` (``epochs=3``, ``lr=0.5``, ...) replace fields of ``config``. After every
    epoch the model is evaluated on the validation rows; the test rows are never used
    here. ``progress`` shows one :class:`Progress` bar over all minibatches; None (the
    default) shows it only when stderr is a terminal, so notebooks and logs stay clean.
    Returns the :class:`History`.

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
    if step is None:
        step = _default_step(model, config.lr, loss_fn or cross_entropy_forward_backward)
    generator = torch.Generator().manual_seed(config.seed)
    steps = math.ceil(data.x_train.shape[0] / config.batch_size)
    show = sys.stderr.isatty() if progress is None else progress
    bar = Progress(config.epochs * steps, "training") if show else None
    history = History()
    for epoch in range(1, config.epochs + 1):
        losses, seconds = _timed_epoch(step, data, config, generator, bar)
        _record(history, model, data, losses, seconds)
        if bar is not None:
            bar.note(epoch=f"{epoch}/{config.epochs}", loss=f"{history.train_loss[-1]:.4f}",
                     valid_acc=f"{history.valid_accuracy[-1]:.4f}")
        stop = config.stop_at_accuracy
        if stop is not None and history.valid_accuracy[-1] >= stop:
            break
    if bar is not None:
        bar.close()
    return history


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


def __getattr__(name: str) -> Any:
    """``step_timings`` moved to :mod:`byhand.timing`: a deprecated alias for one release."""
    if name != "step_timings":
        raise AttributeError(f"module 'byhand.train' has no attribute {name!r}")
    from . import timing

    warnings.warn("byhand.train.step_timings is deprecated; use byhand.timing.step_timings",
                  DeprecationWarning, stacklevel=2)
    return timing.step_timings
