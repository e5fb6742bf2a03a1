"""The edges, one table: every case runs against PyTorch first, then against byhand.

PyTorch's behaviour is recorded, not assumed: a value (compared with ours: dtype,
shape, and values to the dtype's tolerance, ``nan`` where PyTorch has ``nan``) or an
exception (ours must be an instance of PyTorch's exception type, and its message must
name the argument). On ``meta`` tensors only device, shape and dtype are compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from cases import outcome
from torch import Tensor

import byhand
from byhand import losses, mse
from byhand.layers import ReLU

# torch.func's hessian/jacfwd call torch.jit.script internally, which PyTorch 2.13 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

INF, NAN = float("inf"), float("nan")
BFLOAT16 = {"rtol": 1.6e-2, "atol": 1e-5}  # torch.testing's defaults for bfloat16


def _randn(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _probs(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return _randn(*shape, dtype=dtype, seed=1).softmax(1)


def _grad(fn: Callable[[Tensor], Tensor], x: Tensor, g: Tensor | None = None) -> Tensor:
    """Autograd's gradient of ``fn`` at ``x`` for the upstream gradient ``g`` (ones by default)."""
    leaf = x.detach().clone().requires_grad_(True)
    out = fn(leaf)
    (grad,) = torch.autograd.grad(out, leaf, torch.ones_like(out) if g is None else g)
    return grad


def _second_derivative(fn: Callable[..., Tensor]) -> tuple[Tensor, ...]:
    """The gradient of the summed first derivative of ``fn`` on a leaf (a Hessian row sum)."""
    x = _randn(3, 4, dtype=torch.float64).log_softmax(1).requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x, torch.tensor([0, 3, 1])), x, create_graph=True)
    return torch.autograd.grad(g.sum(), x)


def _with_no_grad(fn: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Tensor:
    with torch.no_grad():
        return fn(*args, **kwargs)


def _relu_grad_ours(x: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    relu = ReLU()
    return relu.forward(x), relu.backward(g)


def _relu_grad_torch(x: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    return torch.relu(x), _grad(torch.relu, x, g)


def _mse_torch(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    return F.mse_loss(x, t), _grad(lambda z: F.mse_loss(z, t), x)


def _mse_ours(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    loss = mse.mse_loss(x, t)
    return loss, mse.mse_loss_backward(torch.ones_like(loss), x, t)


def _ce_pair_torch(x: Tensor, t: Tensor, **kw: Any) -> tuple[Tensor, Tensor]:
    loss = F.cross_entropy(x, t, **kw)
    return loss, _grad(lambda z: F.cross_entropy(z, t, **kw), x)


def _ce_pair_ours(x: Tensor, t: Tensor, **kw: Any) -> tuple[Tensor, Tensor]:
    loss = losses.cross_entropy(x, t, **kw)
    return loss, losses.cross_entropy_backward(torch.ones_like(loss), x, t, **kw)


@dataclass
class Edge:
    """One edge: PyTorch's call, ours, and the words our error must contain if PyTorch raises."""

    name: str
    reference: Callable[[], Any]
    ours: Callable[[], Any]
    words: tuple[str, ...] = ()
    tolerance: dict[str, float] | None = None


X, Y = _randn(3, 4), torch.tensor([0, 1, 2])
X200 = _randn(3, 200)
U8 = torch.tensor([0, 156, 1], dtype=torch.uint8)
ROWS_INF = torch.tensor([[INF, 1.0, 2.0], [INF, INF, 0.0], [-INF, -INF, -INF],
                         [INF, -INF, 0.0], [0.0, 1.0, 2.0]])
RELU_IN = torch.tensor([NAN, -1.0, 0.0, 2.0, -INF, INF])
RELU_G = torch.tensor([1.0, INF, 3.0, 4.0, NAN, 6.0])  # inf and nan arrive at inactive units
META_X = torch.empty(6, 5, 3, device="meta")
META_Y = torch.empty(6, 3, dtype=torch.int64, device="meta")
EMPTY_C = torch.empty(3, 0)
X3 = _randn(2, 3, 4, dtype=torch.float64)
W64, W32 = torch.ones(4, dtype=torch.float64), torch.ones(4)
W_GRAD = torch.linspace(0.5, 2.0, 4).requires_grad_(True)
XS, YS = _randn(6, 5, 4, dtype=torch.float64), torch.randint(0, 4, (6, 5),
                                                             generator=torch.Generator().manual_seed(2))


def _pair(name: str, fn_torch: Callable[..., Any], fn_ours: Callable[..., Any], *args: Any,
          words: tuple[str, ...] = (), tolerance: dict[str, float] | None = None,
          **kwargs: Any) -> Edge:
    return Edge(name, lambda: fn_torch(*args, **kwargs), lambda: fn_ours(*args, **kwargs), words,
                tolerance)


EDGES = [
    # --- 1. results: targets, dtypes, infinities, NaN ------------------------------------
    _pair("uint8 target 156 is a class, not ignore_index -100", _ce_pair_torch, _ce_pair_ours,
          X200, U8),
    _pair("uint8 target 156 in nll_loss", F.nll_loss, losses.nll_loss, X200, U8),
    _pair("uint8 target 255 with ignore_index=255", F.cross_entropy, losses.cross_entropy,
          X200, torch.tensor([0, 255, 1], dtype=torch.uint8), ignore_index=255),
    _pair("uint8 target 156 with 4 classes", F.cross_entropy, losses.cross_entropy, X, U8,
          words=("target", "156")),
    _pair("float64 probabilities, float32 input: float64 loss", _ce_pair_torch, _ce_pair_ours,
          X, _probs(3, 4, dtype=torch.float64)),
    _pair("float16 probabilities, float32 input: float32 loss", F.cross_entropy,
          losses.cross_entropy, X, _probs(3, 4).half()),
    # PyTorch rounds the log-softmax to bfloat16 before the float32 product; we do not,
    # so the two agree to bfloat16's precision (test_half_precision: ours is closer).
    _pair("float32 probabilities, bfloat16 input: float32 loss", F.cross_entropy,
          losses.cross_entropy, X.bfloat16(), _probs(3, 4), tolerance=BFLOAT16),
    _pair("probabilities with a float64 weight: float64 loss", _ce_pair_torch, _ce_pair_ours,
          X, _probs(3, 4), weight=W64, label_smoothing=0.2, reduction="none"),
    _pair("probabilities with an int64 weight", F.cross_entropy, losses.cross_entropy,
          X, _probs(3, 4), weight=torch.arange(1, 5)),
    _pair("mse float32 input, float64 target: loss float64, gradient float32", _mse_torch,
          _mse_ours, X, _randn(3, 4, dtype=torch.float64, seed=3)),
    _pair("mse int64 input, float32 target", F.mse_loss, mse.mse_loss,
          torch.arange(4), _randn(4)),
    _pair("log_softmax of rows holding +inf", torch.log_softmax, byhand.log_softmax,
          ROWS_INF, 1),
    _pair("softmax of rows holding +inf", torch.softmax, byhand.softmax, ROWS_INF, 1),
    _pair("logsumexp of rows holding +inf", torch.logsumexp, byhand.logsumexp, ROWS_INF, 1),
    Edge("logsumexp_backward at +inf",
         lambda: _grad(lambda z: torch.logsumexp(z, 1), ROWS_INF),
         lambda: byhand.logsumexp_backward(torch.ones(5), ROWS_INF, 1)),
    Edge("softmax_backward at +inf",
         lambda: _grad(lambda z: torch.softmax(z, 1), ROWS_INF, _randn(5, 3)),
         lambda: byhand.softmax_backward(_randn(5, 3), ROWS_INF, 1)),
    Edge("log_softmax_backward at +inf",
         lambda: _grad(lambda z: torch.log_softmax(z, 1), ROWS_INF, _randn(5, 3)),
         lambda: byhand.log_softmax_backward(_randn(5, 3), ROWS_INF, 1)),
    _pair("ReLU forward and backward at nan and infinities", _relu_grad_torch, _relu_grad_ours,
          RELU_IN, RELU_G),
    # --- 2. errors where PyTorch raises, values where it works ---------------------------
    _pair("float32 input, float64 class weight", F.cross_entropy, losses.cross_entropy,
          X, Y, weight=W64, words=("weight", "torch.float32", "torch.float64")),
    _pair("float32 input, float64 class weight, drop-in", F.cross_entropy, byhand.cross_entropy,
          X, Y, weight=W64, words=("weight", "torch.float32", "torch.float64")),
    _pair("float64 input, float32 class weight", F.cross_entropy, losses.cross_entropy,
          X.double(), Y, weight=W32, words=("weight", "torch.float64", "torch.float32")),
    _pair("float16 input, float32 class weight", F.cross_entropy, losses.cross_entropy,
          X.half(), Y, weight=W32, words=("weight", "torch.float16", "torch.float32")),
    _pair("float32 input, int64 class weight", F.cross_entropy, losses.cross_entropy,
          X, Y, weight=torch.ones(4, dtype=torch.int64), words=("weight", "torch.int64")),
    _pair("float32 input, float64 weight, label smoothing", F.cross_entropy,
          losses.cross_entropy, X, Y, weight=W64, label_smoothing=0.1,
          words=("weight", "torch.float64")),
    _pair("nll_loss float32 input, float64 weight", F.nll_loss, losses.nll_loss, X, Y,
          weight=W64, words=("weight", "torch.float32", "torch.float64")),
    _pair("nll_loss backward float32 input, float64 weight", F.nll_loss,
          lambda *a, **k: losses.nll_loss_backward(torch.tensor(1.0), *a, **k), X, Y,
          weight=W64, words=("weight", "torch.float64")),
    Edge("weight that requires grad under no_grad",
         lambda: _with_no_grad(F.cross_entropy, X, Y, weight=W_GRAD),
         lambda: _with_no_grad(losses.cross_entropy, X, Y, weight=W_GRAD)),
    Edge("weight that requires grad under no_grad, drop-in cross_entropy",
         lambda: _with_no_grad(F.cross_entropy, X, Y, weight=W_GRAD),
         lambda: _with_no_grad(byhand.cross_entropy, X, Y, weight=W_GRAD)),
    Edge("weight that requires grad under no_grad, drop-in nll_loss",
         lambda: _with_no_grad(F.nll_loss, X, Y, weight=W_GRAD),
         lambda: _with_no_grad(byhand.nll_loss, X, Y, weight=W_GRAD)),
    _pair("uint8 targets with a K-dimensional input", F.cross_entropy, losses.cross_entropy,
          X3.float().transpose(1, 2), torch.zeros(2, 3, dtype=torch.uint8),
          words=("target", "torch.uint8")),
    _pair("int32 targets", F.cross_entropy, losses.cross_entropy, X, Y.int(),
          words=("target", "torch.int32")),
    _pair("int32 targets in nll_loss", F.nll_loss, losses.nll_loss, X, Y.int(),
          words=("target", "torch.int32")),
    _pair("int16 targets", F.cross_entropy, byhand.cross_entropy, X, Y.short(),
          words=("target", "torch.int16")),
    _pair("bool probabilities", F.cross_entropy, losses.cross_entropy, X,
          torch.ones(3, 4, dtype=torch.bool), words=("target", "torch.bool")),
    _pair("softmax of integers", torch.softmax, byhand.softmax, torch.arange(3), 0,
          words=("input", "torch.int64")),
    _pair("log_softmax of integers", torch.log_softmax, byhand.log_softmax, torch.arange(3), 0,
          words=("input", "torch.int64")),
    _pair("logsumexp of integers (promoted)", torch.logsumexp, byhand.logsumexp,
          torch.arange(3), 0),
    _pair("mse_loss of two integer tensors", F.mse_loss, mse.mse_loss, torch.arange(3),
          torch.arange(3), words=("target", "torch.int64")),
    _pair("softmax with a tuple dim", torch.softmax, byhand.softmax, X3, (0, 2),
          words=("dim",)),
    _pair("logsumexp with an empty tuple dim", torch.logsumexp, byhand.logsumexp, X3, (),
          words=("dim",)),
    _pair("logsumexp with a repeated dim", torch.logsumexp, byhand.logsumexp, X3, (0, 0),
          words=("dim",)),
    _pair("logsumexp with dim out of range", torch.logsumexp, byhand.logsumexp, X3, 3,
          words=("dim", "3")),
    # --- 3. crashes where PyTorch works --------------------------------------------------
    Edge("second derivative of nll_loss on a leaf",
         lambda: _second_derivative(F.nll_loss), lambda: _second_derivative(byhand.nll_loss)),
    Edge("second derivative of cross_entropy on a leaf",
         lambda: _second_derivative(F.cross_entropy),
         lambda: _second_derivative(byhand.cross_entropy)),
    *[Edge(f"torch.func.{tr.__name__} through {name}",
           (lambda tr=tr, ref=ref, red=red: tr(lambda z: ref(z, YS[0], reduction=red))(XS[0])),
           (lambda tr=tr, fn=fn, red=red: tr(lambda z: fn(z, YS[0], reduction=red))(XS[0])))
      for name, ref, fn in (("cross_entropy", F.cross_entropy, byhand.cross_entropy),
                            ("nll_loss", F.nll_loss, byhand.nll_loss))
      for tr, red in ((torch.func.grad, "mean"), (torch.func.jacrev, "none"),
                      (torch.func.jacfwd, "sum"), (torch.func.hessian, "mean"))],
    *[Edge(f"torch.func.vmap through {name}",
           (lambda ref=ref: (torch.func.vmap(lambda z, t: ref(z, t, reduction="none"))(XS, YS),
                             torch.func.vmap(torch.func.grad(ref))(XS, YS))),
           (lambda fn=fn: (torch.func.vmap(lambda z, t: fn(z, t, reduction="none"))(XS, YS),
                           torch.func.vmap(torch.func.grad(fn))(XS, YS))))
      for name, ref, fn in (("cross_entropy", F.cross_entropy, byhand.cross_entropy),
                            ("nll_loss", F.nll_loss, byhand.nll_loss))],
    _pair("meta tensors, cross_entropy", F.cross_entropy, losses.cross_entropy, META_X, META_Y),
    _pair("meta tensors, cross_entropy none", F.cross_entropy, losses.cross_entropy, META_X,
          META_Y, reduction="none", label_smoothing=0.1),
    _pair("meta tensors, drop-in cross_entropy", F.cross_entropy, byhand.cross_entropy,
          META_X, META_Y, weight=torch.empty(5, device="meta")),
    _pair("meta tensors, nll_loss", F.nll_loss, losses.nll_loss, META_X, META_Y),
    _pair("meta tensors, softmax", torch.softmax, byhand.softmax, META_X, 1),
    _pair("meta tensors, logsumexp", torch.logsumexp, byhand.logsumexp, META_X, (1, 2)),
    Edge("mse_loss_backward on an empty input",
         lambda: _grad(lambda z: F.mse_loss(z, torch.empty(0)), torch.empty(0)),
         lambda: mse.mse_loss_backward(torch.tensor(NAN), torch.empty(0), torch.empty(0))),
    _pair("mse_loss of an empty input", F.mse_loss, mse.mse_loss, torch.empty(0),
          torch.empty(0)),
    _pair("softmax over a size-0 dim", torch.softmax, byhand.softmax, EMPTY_C, 1),
    _pair("log_softmax over a size-0 dim", torch.log_softmax, byhand.log_softmax, EMPTY_C, 1),
    _pair("logsumexp over a size-0 dim", torch.logsumexp, byhand.logsumexp, EMPTY_C, 1),
    Edge("logsumexp_backward over a size-0 dim",
         lambda: _grad(lambda z: torch.logsumexp(z, 1), EMPTY_C),
         lambda: byhand.logsumexp_backward(torch.ones(3), EMPTY_C, 1)),
    Edge("softmax_backward over a size-0 dim",
         lambda: _grad(lambda z: torch.softmax(z, 1), EMPTY_C),
         lambda: byhand.softmax_backward(torch.ones(3, 0), EMPTY_C, 1)),
    *[_pair(f"C = 0 with probability targets, {red}", _ce_pair_torch, _ce_pair_ours,
            EMPTY_C, EMPTY_C, reduction=red, label_smoothing=0.1)
      for red in ("mean", "sum", "none")],
    _pair("C = 0 with class-index targets", F.cross_entropy, losses.cross_entropy, EMPTY_C,
          torch.zeros(3, dtype=torch.int64), words=("target", "got 0")),
    _pair("no samples, class-index targets, mean", _ce_pair_torch, _ce_pair_ours,
          torch.empty(0, 4), torch.empty(0, dtype=torch.int64)),
    _pair("no samples, probability targets, mean", _ce_pair_torch, _ce_pair_ours,
          torch.empty(0, 4), torch.empty(0, 4)),
    _pair("logsumexp with a tuple dim", torch.logsumexp, byhand.logsumexp, X3, (0, 2)),
    _pair("logsumexp with a negative tuple dim, keepdim", torch.logsumexp, byhand.logsumexp,
          X3, (-1, 0), keepdim=True),
    Edge("logsumexp_backward with a tuple dim",
         lambda: _grad(lambda z: torch.logsumexp(z, (0, 2)), X3, _randn(3, dtype=torch.float64)),
         lambda: byhand.logsumexp_backward(_randn(3, dtype=torch.float64), X3, (0, 2))),
    Edge("logsumexp_backward with a tuple dim, keepdim",
         lambda: _grad(lambda z: torch.logsumexp(z, (2, 0), keepdim=True), X3,
                       _randn(1, 3, 1, dtype=torch.float64)),
         lambda: byhand.logsumexp_backward(_randn(1, 3, 1, dtype=torch.float64), X3, (2, 0),
                                           keepdim=True)),
    _pair("softmax of a 0-d tensor", torch.softmax, byhand.softmax, torch.tensor(2.0), 0),
    _pair("log_softmax of a 0-d tensor", torch.log_softmax, byhand.log_softmax,
          torch.tensor(2.0), 0),
    _pair("logsumexp of a 0-d tensor", torch.logsumexp, byhand.logsumexp, torch.tensor(2.0), 0),
]


def _assert_same(ours: Any, ref: Any, tolerance: dict[str, float] | None) -> None:
    if isinstance(ref, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(ref)
        for a, b in zip(ours, ref, strict=True):
            _assert_same(a, b, tolerance)
        return
    assert isinstance(ours, Tensor), f"expected a tensor, got {ours!r}"
    assert (ours.device, ours.dtype, ours.shape) == (ref.device, ref.dtype, ref.shape)
    if ref.device.type != "meta":
        torch.testing.assert_close(ours, ref, equal_nan=True, **(tolerance or {}))


@pytest.mark.parametrize("edge", EDGES, ids=[e.name for e in EDGES])
def test_edge_behaves_as_pytorch(edge: Edge) -> None:
    expected, reference_error = outcome(edge.reference)
    got, our_error = outcome(edge.ours)
    if reference_error is None:
        assert our_error is None, f"PyTorch works, we raised {our_error!r}"
        _assert_same(got, expected, edge.tolerance)
        return
    assert our_error is not None, f"PyTorch raises {reference_error!r}, we returned {got!r}"
    assert isinstance(our_error, type(reference_error)), (
        f"PyTorch raises {type(reference_error).__name__}, we raised {our_error!r}")
    for word in edge.words:
        assert word in str(our_error), f"{word!r} not in {str(our_error)!r}"


def test_every_error_edge_names_what_to_look_for() -> None:
    """A case where PyTorch raises must say which words our message has to contain."""
    for edge in EDGES:
        _, reference_error = outcome(edge.reference)
        assert (reference_error is None) == (not edge.words), edge.name
