r"""One training step on one minibatch, by hand and under autograd.

For a minibatch :math:`B` of :math:`|B|` rows the network computes logits
:math:`z_{nc}`, the loss and its gradient come from one softmax pass
(:func:`byhand.losses.cross_entropy_forward_backward`),

.. math::

   \begin{aligned}
   L &= -\frac{1}{|B|}\sum_{n \in B} \log s_{n y_n}, \\
   \frac{\partial L}{\partial z_{nc}} &= \frac{s_{nc} - \delta_{c y_n}}{|B|},
   \end{aligned}

every layer's ``backward`` turns :math:`\partial L/\partial z` into its parameter
gradients, and plain stochastic gradient descent moves every parameter
:math:`\theta_k \leftarrow \theta_k - \eta\, \partial L/\partial \theta_k`
(:func:`train_step`). :func:`torch_step` is the same step under autograd. A *step*
is any ``step(x, y) -> loss``: :func:`hand_trainer` and :func:`torch_trainer` make
one for :func:`byhand.train.fit`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .layers import Layer, Linear, Sequential
from .losses import cross_entropy_forward_backward

__all__ = [
    "LossFn",
    "StepFn",
    "backward",
    "hand_trainer",
    "sgd_step",
    "torch_step",
    "torch_trainer",
    "train_step",
]

LossFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""A loss and its gradient, ``loss_fn(logits, target) -> (loss, grad_logits)``, the loss a scalar."""

StepFn = Callable[[Tensor, Tensor], Tensor]
"""One training step on a minibatch, ``step(x, y) -> loss``, returning its loss (a tensor)."""


def backward(model: Layer, grad_output: Tensor) -> None:
    r"""Backpropagate :math:`\partial L/\partial z` through ``model`` into its parameter gradients.

    The gradient with respect to the input images, :math:`\partial L/\partial x`, is
    never used, so when the first layer of a :class:`~byhand.layers.Sequential` is a
    :class:`~byhand.layers.Linear` only its parameter gradients are computed
    (:meth:`~byhand.layers.Linear.parameter_backward`), which saves the largest matrix
    product of the backward pass; autograd skips it too, since the images do not
    require a gradient.

    Examples:
        >>> from byhand.layers import mlp
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
        >>> from byhand.layers import mlp
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


def hand_trainer(model: Layer, lr: float,
                 loss_fn: LossFn = cross_entropy_forward_backward) -> StepFn:
    """``step(x, y)``: :func:`train_step` of ``model`` with ``lr`` and ``loss_fn``.

    The default step of :func:`byhand.train.fit`; pass ``loss_fn`` to train with
    another loss and its hand-written gradient.

    Examples:
        >>> from byhand.layers import mlp
        >>> model = mlp([4, 3, 2], seed=0)
        >>> step = hand_trainer(model, lr=0.5)
        >>> x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        >>> step(x, torch.tensor([0, 1, 0, 1, 1, 0, 0, 1]))
        tensor(0.7585)
    """
    if not isinstance(model, Layer):
        raise TypeError("hand_trainer: model must be a byhand Layer (a torch module trains "
                        f"through step=torch_trainer(...)); got {type(model).__name__}")
    return lambda x, y: train_step(model, x, y, lr, loss_fn)


def torch_step(
    net: torch.nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor
) -> Tensor:
    """The same step under autograd: ``F.cross_entropy``, ``loss.backward()``, ``optimizer.step()``.

    Examples:
        >>> from byhand.layers import mlp, torch_mlp
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
        >>> from byhand.layers import mlp, torch_mlp
        >>> net = torch_mlp(mlp([4, 3, 2], seed=0))
        >>> step = torch_trainer(net, lr=0.5)
        >>> x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
        >>> step(x, torch.tensor([0, 1, 0, 1, 1, 0, 0, 1]))
        tensor(0.7585)
    """
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    return lambda x, y: torch_step(net, optimizer, x, y)
