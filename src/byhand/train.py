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

The data are moved to the device once (:func:`prepare`), after the official training
images are split, by a fixed seeded permutation (:func:`split_indices`), into 50,000
rows to train on and 10,000 rows of validation; the test images are left alone until
the end. Every epoch draws a seeded permutation of the training rows
(:func:`batch_indices`) and slices minibatches out of it on the device, so no
``DataLoader`` and no copy between host and device happens inside the loop. The same
seed gives the same batches on every device. :func:`fit` evaluates on the validation
rows after every epoch and may stop there; the caller evaluates on the test set once,
at the end (:func:`evaluate`).

:func:`torch_mlp` and :func:`torch_step` are the autograd twins of :func:`mlp` and
:func:`train_step` (``torch.nn.Linear``, ``F.cross_entropy``, ``torch.optim.SGD``),
kept here so the book, the tests and the benchmarks compare against one reference;
:func:`torch_trainer` makes the twin a step function that :func:`fit` accepts.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from .device import synchronize
from .layers import Layer, Linear, ReLU, Sequential
from .losses import cross_entropy, cross_entropy_forward_backward
from .timing import interleaved

if TYPE_CHECKING:
    from .data import Dataset

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_HIDDEN",
    "DEFAULT_LR",
    "DEFAULT_SEED",
    "SPLIT_SEED",
    "VALIDATION_FRACTION",
    "History",
    "LossFn",
    "StepFn",
    "Tensors",
    "backward",
    "batch_indices",
    "confusion_matrix",
    "evaluate",
    "fit",
    "mlp",
    "normalisation",
    "predict",
    "prepare",
    "sgd_step",
    "split_indices",
    "step_timings",
    "torch_mlp",
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
VALIDATION_FRACTION = 1 / 6  # 10,000 of MNIST's 60,000 training images, as fastai's split
SPLIT_SEED = 0  # the split is the same whatever seed trains the network

LossFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""``loss_fn(logits, target) -> (loss, grad_logits)``: a scalar loss and its gradient."""

StepFn = Callable[[Tensor, Tensor], Tensor]
"""``step(x, y) -> loss``: one training step on a minibatch, returning its loss (a tensor)."""


# ------------------------------------------------------------------------------ data


class Tensors(NamedTuple):
    """The six tensors training needs, all on one device: features and class indices.

    ``train`` rows are trained on, ``valid`` rows choose hyperparameters and when to
    stop, ``test`` rows are evaluated once at the end.

    Examples:
        >>> t = Tensors(*[torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64)] * 3)
        >>> t.x_valid.shape, t.y_test.dtype
        (torch.Size([2, 3]), torch.int64)
    """

    x_train: Tensor
    y_train: Tensor
    x_valid: Tensor
    y_valid: Tensor
    x_test: Tensor
    y_test: Tensor


def normalisation(images: Tensor) -> tuple[float, float]:
    r"""Mean and standard deviation of the pixels :math:`p_{nk}/255` of ``uint8`` images.

    .. math::

       \mu = \frac{1}{NK}\sum_{n,k} \frac{p_{nk}}{255}, \qquad
       \sigma^2 = \frac{1}{NK - 1}\sum_{n,k}\Big(\frac{p_{nk}}{255} - \mu\Big)^2,

    computed from exact integer sums of :math:`p` and :math:`p^2`, so the result
    does not depend on the device or on the order of a floating-point reduction.

    Examples:
        >>> mean, std = normalisation(torch.tensor([[0, 255], [255, 0]], dtype=torch.uint8))
        >>> mean, round(std, 4)
        (0.5, 0.5774)
        >>> normalisation(torch.zeros(2))
        Traceback (most recent call last):
            ...
        TypeError: normalisation: images must be uint8; got dtype torch.float32
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"normalisation: images must be uint8; got dtype {images.dtype}")
    count = images.numel()
    if count < 2:
        raise ValueError(f"normalisation: need at least two pixels; got {count}")
    pixels = images.to(torch.int64)
    total, squares = int(pixels.sum()), int((pixels * pixels).sum())
    mean = total / count
    var = (squares - total * total / count) / (count - 1)
    return mean / 255.0, math.sqrt(var) / 255.0


def _features(
    images: Tensor, mean: float, std: float, device: torch.device, dtype: torch.dtype
) -> Tensor:
    r""":math:`x_{nk} = (p_{nk}/255 - \mu)/\sigma`, flattened to one row per image, on ``device``."""
    flat = images.reshape(images.shape[0], -1).to(device)
    return (flat.to(dtype) / 255.0 - mean) / std


def split_indices(
    n: int, fraction: float = VALIDATION_FRACTION, seed: int = SPLIT_SEED
) -> tuple[Tensor, Tensor]:
    """Split ``range(n)`` into training and validation row indices, each sorted.

    A permutation of ``range(n)`` is drawn by ``torch.randperm`` from a CPU generator
    seeded with ``seed``; its first ``round(fraction * n)`` entries are the validation
    rows and the rest the training rows. With MNIST's 60,000 training images and the
    defaults this gives 50,000 and 10,000 rows, the sizes of the split that fastai's
    course (and the forum thread that asks about it) use; theirs takes the last 10,000
    images in file order, ours draws them at random with a fixed seed.

    Examples:
        >>> split_indices(6, fraction=1 / 3)
        (tensor([0, 1, 3, 4]), tensor([2, 5]))
        >>> [len(rows) for rows in split_indices(60_000)]
        [50000, 10000]
    """
    if not 0 < fraction < 1:
        raise ValueError(f"split_indices: fraction must be between 0 and 1; got {fraction}")
    n_valid = round(fraction * n)
    if not 0 < n_valid < n:
        raise ValueError(
            f"split_indices: need at least one training and one validation row; got n={n} "
            f"rows and fraction={fraction} ({n_valid} validation rows)"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_valid:].sort().values, order[:n_valid].sort().values


def prepare(
    dataset: Dataset,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    limit: int | None = None,
    validation: float = VALIDATION_FRACTION,
    split_seed: int = SPLIT_SEED,
) -> Tensors:
    r"""Split, flatten, scale and normalise a :class:`~byhand.data.Dataset`; move it to ``device``.

    The training images are split by :func:`split_indices` (a ``validation`` fraction,
    drawn with ``split_seed``). Every image becomes a row of :math:`K = 784` features
    :math:`x_{nk} = (p_{nk}/255 - \mu)/\sigma`, with :math:`\mu, \sigma` from the
    rows that are trained on only (:func:`normalisation`), so the validation and test
    images are transformed exactly as the training images and tell the network nothing.
    ``limit`` keeps the first ``limit`` images of each file (a quick run) before the
    split. The ``uint8`` images travel to the device and are converted there, which
    moves a quarter of the bytes of a float32 copy.

    Examples:
        >>> from byhand.data import Dataset
        >>> gen = torch.Generator().manual_seed(0)
        >>> images = torch.randint(0, 256, (12, 2, 2), generator=gen, dtype=torch.uint8)
        >>> labels = torch.arange(12) % 3
        >>> tiny = Dataset("tiny", images, labels, images[:4], labels[:4], ("a", "b", "c"))
        >>> data = prepare(tiny)
        >>> data.x_train.shape, data.x_valid.shape, data.x_test.shape, data.y_train.dtype
        (torch.Size([10, 4]), torch.Size([2, 4]), torch.Size([4, 4]), torch.int64)
        >>> round(float(data.x_train.mean()), 4), round(float(data.x_train.std()), 4)
        (0.0, 1.0)
    """
    if limit is not None and limit < 1:
        raise ValueError(f"prepare: limit must be a positive number of images; got {limit}")
    device = torch.device("cpu") if device is None else torch.device(device)
    images, labels = dataset.train_images[:limit], dataset.train_labels[:limit]
    train_rows, valid_rows = split_indices(images.shape[0], validation, split_seed)
    test_images, test_labels = dataset.test_images[:limit], dataset.test_labels[:limit]
    mean, std = normalisation(images[train_rows])
    return Tensors(
        x_train=_features(images[train_rows], mean, std, device, dtype),
        y_train=labels[train_rows].to(device=device, dtype=torch.int64),
        x_valid=_features(images[valid_rows], mean, std, device, dtype),
        y_valid=labels[valid_rows].to(device=device, dtype=torch.int64),
        x_test=_features(test_images, mean, std, device, dtype),
        y_test=test_labels.to(device=device, dtype=torch.int64),
    )


def batch_indices(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device | str | None = None
) -> Iterator[Tensor]:
    """Yield the row indices of each minibatch of one epoch, on ``device``.

    The permutation of ``range(n)`` is drawn by ``torch.randperm`` from ``generator``
    (a CPU generator, so the same seed gives the same batches on every device) and
    moved to the device once; the last batch holds the remaining ``n % batch_size``
    rows when ``batch_size`` does not divide ``n``.

    Examples:
        >>> list(batch_indices(5, 2, torch.Generator().manual_seed(0)))
        [tensor([4, 0]), tensor([1, 3]), tensor([2])]
    """
    if batch_size < 1:
        raise ValueError(f"batch_indices: batch_size must be positive; got {batch_size}")
    order = torch.randperm(n, generator=generator).to(device or "cpu")
    yield from order.split(batch_size)  # type: ignore[no-untyped-call]  # unannotated in torch


# ----------------------------------------------------------------------------- model


def mlp(
    sizes: Sequence[int],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Sequential:
    """``Linear, ReLU, Linear, ..., Linear`` through the layer widths ``sizes``.

    ``mlp([784, 800, 10])`` is a 784-800-10 network. Weights are drawn on the CPU as
    :class:`torch.nn.Linear` draws them (from ``generator``, or a generator seeded
    with ``seed``, or the global one) and then moved to ``device``, so a seed gives
    the same network on every device.

    Examples:
        >>> net = mlp([4, 3, 2], seed=0)
        >>> net
        Sequential(
          Linear(in_features=4, out_features=3, bias=True),
          ReLU(),
          Linear(in_features=3, out_features=2, bias=True)
        )
        >>> torch.equal(net.layers[0].weight, mlp([4, 3, 2], seed=0).layers[0].weight)
        True
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"mlp: sizes must be two or more positive widths; got {list(sizes)}")
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(seed)
    layers: list[Layer] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        if i:
            layers.append(ReLU())
        cpu = Linear(int(fan_in), int(fan_out), dtype=dtype, generator=generator)
        bias = None if cpu.bias is None else cpu.bias.to(device or "cpu")
        layers.append(Linear.from_tensors(cpu.weight.to(device or "cpu"), bias))
    return Sequential(*layers)


def torch_mlp(model: Sequential) -> torch.nn.Sequential:
    """The autograd twin of ``model``: ``nn.Linear``/``nn.ReLU`` holding copies of its weights.

    Examples:
        >>> model = mlp([4, 3, 2], seed=0)
        >>> net = torch_mlp(model)
        >>> net
        Sequential(
          (0): Linear(in_features=4, out_features=3, bias=True)
          (1): ReLU()
          (2): Linear(in_features=3, out_features=2, bias=True)
        )
        >>> x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(net(x), model(x))
        True
    """
    modules: list[torch.nn.Module] = []
    for layer in model.layers:
        if isinstance(layer, Linear):
            out_f, in_f = layer.weight.shape
            linear = torch.nn.Linear(in_f, out_f, bias=layer.bias is not None,
                                     device=layer.weight.device, dtype=layer.weight.dtype)
            with torch.no_grad():
                linear.weight.copy_(layer.weight)
                if layer.bias is not None:
                    linear.bias.copy_(layer.bias)
            modules.append(linear)
        elif isinstance(layer, ReLU):
            modules.append(torch.nn.ReLU())
        else:
            raise TypeError(f"torch_mlp: only Linear and ReLU layers are supported; got {layer!r}")
    return torch.nn.Sequential(*modules)


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
) -> Tensor:
    """One step on one minibatch: forward, loss and its gradient, backward, SGD update.

    Returns the minibatch loss (before the update) as a 0-dimensional tensor on the
    device; reading it with ``float()`` waits for the device, so callers that do not
    need it at once keep it as a tensor.

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


def _progress_bar(total: int, desc: str) -> Any:
    """A tqdm bar over ``total`` minibatches (a widget in Jupyter when ipywidgets is there).

    A text bar written to something other than a terminal (a log file, a notebook
    without widgets) cannot redraw itself in place, so it is refreshed every few
    seconds instead of twice a second.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm.auto warns when it falls back to text bars
        from tqdm import autonotebook, std
        from tqdm.auto import tqdm
    redraws = autonotebook.tqdm is not std.tqdm or sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="batch", mininterval=0.5 if redraws else 5.0)


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

    Each minibatch goes through ``train_step(model, x, y, lr, loss_fn)``, or through
    ``step(x, y)`` when given (the autograd twin: :func:`torch_trainer`). The losses
    stay on the device (one tensor of shape ``(steps,)``): the loop itself reads
    nothing back from the device. ``progress`` shows a bar over the minibatches; ``on_step`` is called
    after every step (:func:`fit` advances its own bar with it).

    Examples:
        >>> model = mlp([4, 3, 2], seed=0)
        >>> x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
        >>> y = torch.arange(10) % 2
        >>> losses = train_epoch(model, x, y, 4, 0.1, torch.Generator().manual_seed(0))
        >>> losses.shape, losses
        (torch.Size([3]), tensor([0.9379, 0.7557, 0.4785]))
    """
    if step is None:
        if not isinstance(model, Layer):
            raise TypeError("train_epoch: model must be a byhand Layer when no step is given "
                            f"(a torch module trains through step=torch_trainer(...)); "
                            f"got {type(model).__name__}")
        layers = model

        def step(xb: Tensor, yb: Tensor) -> Tensor:
            return train_step(layers, xb, yb, lr, loss_fn)
    steps = math.ceil(x.shape[0] / batch_size)
    losses = torch.empty(steps, dtype=x.dtype, device=x.device)
    bar = _progress_bar(steps, "epoch") if progress else None
    for i, idx in enumerate(batch_indices(x.shape[0], batch_size, generator, x.device)):
        losses[i] = step(x[idx], y[idx])
        if bar is not None:
            bar.update()
        if on_step is not None:
            on_step()
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


def _timed_epoch(
    model: Layer | torch.nn.Module, data: Tensors, batch_size: int, lr: float, generator: torch.Generator,
    loss_fn: LossFn, on_step: Callable[[], object] | None, step: StepFn | None,
) -> tuple[Tensor, float]:
    """Run :func:`train_epoch`; return its step losses and its wall-clock seconds."""
    synchronize(data.x_train.device)
    start = time.perf_counter()
    losses = train_epoch(model, data.x_train, data.y_train, batch_size, lr, generator,
                         loss_fn=loss_fn, on_step=on_step, step=step)
    synchronize(data.x_train.device)
    return losses, time.perf_counter() - start


def fit(
    model: Layer | torch.nn.Module,
    data: Tensors,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    seed: int = DEFAULT_SEED,
    progress: bool | None = None,
    loss_fn: LossFn = cross_entropy_forward_backward,
    stop_at_accuracy: float | None = None,
    step: StepFn | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs of plain minibatch SGD, validating after each.

    Batches come from a ``torch.Generator`` seeded with ``seed``; ``batch_size`` equal
    to the number of training rows is full-batch gradient descent. Each step is
    :func:`train_step` with ``loss_fn``, or ``step(x, y)`` when given (for the autograd
    twin, ``step=torch_trainer(net, lr)`` with ``model=net``). After every epoch the
    model is evaluated on the validation rows; ``stop_at_accuracy`` ends training after
    the first epoch whose validation accuracy reaches it. The test rows are never
    used here. ``progress`` shows one bar over all minibatches, labelled with the
    epoch, its mean training loss and the validation accuracy; None (the default)
    shows it only when stderr is a terminal, so notebooks and logs stay clean.
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
    if epochs < 1:
        raise ValueError(f"fit: epochs must be positive; got {epochs}")
    if batch_size < 1:
        raise ValueError(f"fit: batch_size must be positive; got {batch_size}")
    if progress is None:
        progress = sys.stderr.isatty()
    generator = torch.Generator().manual_seed(seed)
    steps = math.ceil(data.x_train.shape[0] / batch_size)
    bar = _progress_bar(epochs * steps, "training") if progress else None
    history = History()
    for epoch in range(1, epochs + 1):
        losses, seconds = _timed_epoch(model, data, batch_size, lr, generator, loss_fn,
                                       None if bar is None else bar.update, step)
        _record(history, model, data, losses, seconds)
        if bar is not None:
            bar.set_postfix(epoch=f"{epoch}/{epochs}", loss=f"{history.train_loss[-1]:.4f}",
                            valid_acc=f"{history.valid_accuracy[-1]:.4f}")
        if stop_at_accuracy is not None and history.valid_accuracy[-1] >= stop_at_accuracy:
            break
    if bar is not None:
        bar.close()
    return history


def _record(history: History, model: Layer | torch.nn.Module, data: Tensors, losses: Tensor,
            seconds: float) -> None:
    """Evaluate on the validation rows and append one epoch's figures to ``history``."""
    valid_loss, valid_accuracy = evaluate(model, data.x_valid, data.y_valid)
    history.step_loss.extend(losses.tolist())
    history.train_loss.append(float(losses.mean()))
    history.valid_loss.append(valid_loss)
    history.valid_accuracy.append(valid_accuracy)
    history.seconds.append(seconds)


# -------------------------------------------------------------------------- timings


def step_timings(
    sizes: Sequence[int] = (784, *DEFAULT_HIDDEN, 10),
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    rounds: int = 10,
    min_run_time: float = 0.2,
    back_to_back: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Latency and throughput of one full training step, by hand and under autograd.

    Both models start from the same weights and see the same random batch; the two
    steps are timed in alternation by :func:`byhand.timing.interleaved`
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
