r"""Layers with an explicit ``forward`` and a hand-written ``backward``; no autograd.

Each layer caches what its backward needs during ``forward``. ``backward`` takes
:math:`g_{nq} = \partial L/\partial z_{nq}` (the gradient at the layer's output), stores
the parameter gradients, and returns :math:`\partial L/\partial a_{np}` for the layer
below.

For :class:`Linear`, :math:`z_{nq} = \sum_p a_{np} W_{qp} + b_q` (a row of ``a`` per
sample), so

.. math::

   \begin{aligned}
   \frac{\partial L}{\partial W_{qp}} &= \sum_n g_{nq}\, a_{np}, \\
   \frac{\partial L}{\partial b_q} &= \sum_n g_{nq}, \\
   \frac{\partial L}{\partial a_{np}} &= \sum_q g_{nq}\, W_{qp},
   \end{aligned}

that is ``dW = gᵀ a``, ``db = g.sum(0)``, ``da = g W``. For :class:`ReLU`,
:math:`z_{np} = \max(a_{np}, 0)` and
:math:`\partial L/\partial a_{np} = g_{np}\,[a_{np} > 0]`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

__all__ = ["Layer", "Linear", "ReLU", "Sequential", "mlp", "torch_mlp"]


class Layer:
    """The interface: ``forward``, ``backward`` and (parameter, gradient) pairs.

    Examples:
        >>> isinstance(ReLU(), Layer), list(Layer().parameters())
        (True, [])
        >>> Layer().forward(torch.zeros(1))
        Traceback (most recent call last):
            ...
        NotImplementedError
    """

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, grad_output: Tensor) -> Tensor:
        raise NotImplementedError

    def parameters(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Yield ``(parameter, gradient)`` pairs; the gradient is ``None`` before a backward."""
        return iter(())

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)


class Linear(Layer):
    r"""``z = a Wᵀ + b``, :math:`z_{nq} = \sum_p a_{np} W_{qp} + b_q`, with ``W`` of shape ``(out, in)``.

    Initialised exactly as :class:`torch.nn.Linear`: every entry of ``W`` and ``b`` is
    drawn from :math:`U(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})`, weight first, from
    the same random stream, so the same seed gives the same numbers. The weight's
    bound is computed as PyTorch's ``kaiming_uniform_(a=√5)`` computes it,
    :math:`\sqrt{3}\cdot\sqrt{2/(1+a^2)}/\sqrt{\text{in}}`, which equals
    :math:`1/\sqrt{\text{in}}` but rounds differently in the last bit of a float64.
    Inputs may have leading dimensions, ``(..., in)``.

    Examples:
        >>> W = torch.tensor([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
        >>> layer = Linear.from_tensors(W, bias=torch.tensor([0.5, -0.5]))
        >>> layer(torch.tensor([[1.0, 2.0, 3.0]]))
        tensor([[-1.5000,  3.5000]])
        >>> layer.backward(torch.tensor([[1.0, -1.0]]))
        tensor([[-1., -1., -1.]])
        >>> layer.weight_grad, layer.bias_grad
        (tensor([[ 1.,  2.,  3.],
                [-1., -2., -3.]]), tensor([ 1., -1.]))
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *,
        device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> None:
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                "Linear: in_features and out_features must be positive; "
                f"got {in_features} and {out_features}"
            )
        bound = 1.0 / math.sqrt(in_features)
        gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
        weight_bound = math.sqrt(3.0) * (gain / math.sqrt(in_features))
        self.weight = torch.empty(out_features, in_features, device=device, dtype=dtype)
        self.weight.uniform_(-weight_bound, weight_bound, generator=generator)
        self.bias: Tensor | None = None
        if bias:
            self.bias = torch.empty(out_features, device=device, dtype=dtype)
            self.bias.uniform_(-bound, bound, generator=generator)
        self.weight_grad: Tensor | None = None
        self.bias_grad: Tensor | None = None
        self._input: Tensor | None = None

    @classmethod
    def from_tensors(cls, weight: Tensor, bias: Tensor | None = None) -> Linear:
        """A layer holding copies of the given ``weight`` (out, in) and ``bias`` (out,)."""
        layer = cls.__new__(cls)
        layer.weight = weight.detach().clone()
        layer.bias = None if bias is None else bias.detach().clone()
        layer.weight_grad = layer.bias_grad = layer._input = None
        return layer

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.weight.shape[1]:
            raise ValueError(
                f"Linear.forward: x must have {self.weight.shape[1]} features in its last "
                f"dimension; got shape {tuple(x.shape)}"
            )
        self._input = x
        if self.bias is None:
            return x @ self.weight.T
        if x.dim() == 2:
            return torch.addmm(self.bias, x, self.weight.T)  # y = b + x Wᵀ in one kernel
        return x @ self.weight.T + self.bias

    def backward(self, grad_output: Tensor) -> Tensor:
        r"""Store ``dW = gᵀa`` and ``db = Σₙ g``; return ``da = gW``.

        In index notation, :math:`\partial L/\partial W_{qp} = \sum_n g_{nq} a_{np}`,
        :math:`\partial L/\partial b_q = \sum_n g_{nq}` and
        :math:`\partial L/\partial a_{np} = \sum_q g_{nq} W_{qp}`.
        """
        self.parameter_backward(grad_output)
        return grad_output @ self.weight

    def parameter_backward(self, grad_output: Tensor) -> None:
        """Store ``dW = gᵀa`` and ``db = Σₙ g`` only.

        For a first layer, whose input (the data) needs no gradient, this skips the
        largest matrix product of the backward pass, as autograd does.

        The new gradients are written into the tensors of the previous backward when they
        fit (same shape, dtype and device, and no autograd graph to record), as PyTorch
        writes into ``.grad`` after ``zero_grad(set_to_none=False)``: a training step then
        asks the allocator for no weight-sized memory. Keep a step's gradient with
        ``.clone()``.
        """
        if self._input is None:
            raise RuntimeError("Linear.backward: call forward first")
        # Leading dimensions (..., in) are all "samples": flatten them into n.
        delta = grad_output.reshape(-1, grad_output.shape[-1])
        a = self._input.reshape(-1, self._input.shape[-1])
        reuse = not (torch.is_grad_enabled() and (delta.requires_grad or a.requires_grad))
        dw = self.weight_grad
        if reuse and _fits(dw, (delta.shape[1], a.shape[1]), delta):
            torch.mm(delta.T, a, out=dw)
        else:
            self.weight_grad = delta.T @ a
        if self.bias is not None:
            db = self.bias_grad
            if reuse and _fits(db, (delta.shape[1],), delta):
                torch.sum(delta, 0, out=db)
            else:
                self.bias_grad = delta.sum(0)

    def parameters(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        yield self.weight, self.weight_grad
        if self.bias is not None:
            yield self.bias, self.bias_grad

    def __repr__(self) -> str:
        out_f, in_f = self.weight.shape
        return f"Linear(in_features={in_f}, out_features={out_f}, bias={self.bias is not None})"


def _fits(old: Tensor | None, shape: tuple[int, ...], like: Tensor) -> bool:
    """Whether ``old`` can take a new gradient of ``shape`` computed from ``like``."""
    return (old is not None and old.shape == shape and old.dtype == like.dtype
            and old.device == like.device)


class ReLU(Layer):
    r""":math:`z_{np} = \max(a_{np}, 0)`; the backward lets :math:`g_{np}` through where :math:`a_{np} > 0`.

    The mask :math:`[a_{np} > 0]` is read off the output: :math:`g_{np}` passes where
    :math:`z_{np} \ne 0` and is 0 where :math:`z_{np} = 0` (the subgradient at 0 is 0, as
    in :func:`torch.relu`). A ``nan`` input gives a ``nan`` output, through which PyTorch
    lets the gradient pass, and so does this rule. The select "0 where :math:`z \le 0`,
    else :math:`g`" is done by ``threshold_backward``, the one elementwise kernel autograd
    itself uses for ReLU: a multiplication by a mask would turn an infinite
    :math:`g` at an inactive unit into :math:`0 \cdot \infty = \mathrm{nan}`
    (PyTorch gives 0), and both a float mask and a boolean select are several times
    slower on the CPU.

    Examples:
        >>> relu = ReLU()
        >>> relu(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 2.])
        >>> relu.backward(torch.tensor([5.0, 5.0, 5.0]))
        tensor([0., 0., 5.])
    """

    def __init__(self) -> None:
        self._output: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        self._output = x.clamp(min=0)
        return self._output

    def backward(self, grad_output: Tensor) -> Tensor:
        if self._output is None:
            raise RuntimeError("ReLU.backward: call forward first")
        grad: Tensor = torch.ops.aten.threshold_backward(grad_output, self._output, 0)
        return grad

    def __repr__(self) -> str:
        return "ReLU()"


class Sequential(Layer):
    """Layers applied in order; ``backward`` runs them in reverse.

    Examples:
        >>> _ = torch.manual_seed(0); net = Sequential(Linear(4, 3), ReLU(), Linear(3, 2))
        >>> a = torch.randn(5, 4, requires_grad=True)
        >>> net(a).sum().backward()
        >>> torch.allclose(net.backward(torch.ones(5, 2)), a.grad)
        True
        >>> [tuple(grad.shape) for _, grad in net.parameters()]
        [(3, 4), (3,), (2, 3), (2,)]
    """

    def __init__(self, *layers: Layer) -> None:
        self.layers = list(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_output: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output

    def parameters(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        for layer in self.layers:
            yield from layer.parameters()

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"


# ---------------------------------------------------------------------- networks


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
