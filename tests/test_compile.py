"""The drop-ins under torch.compile, torch.library.opcheck and batched gradients.

``torch.compile(fullgraph=True)`` refuses any graph break, so a function calling every
drop-in that compiles at all compiles without one; its values and gradients must equal
eager's. The registered operators pass ``opcheck`` (schema, fake tensors, autograd
registration, AOT dispatch). Batched gradients (``is_grads_batched``, ``gradcheck`` with
``check_batched_grad`` and forward AD) work for every loss and option.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import byhand
from byhand import losses

# byhand.kernels registers operators of its own in the byhand namespace: both coexist
with contextlib.suppress(ImportError):
    import byhand.kernels

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script:DeprecationWarning")


def _problem(dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, dtype=dtype, generator=gen)
    y = torch.tensor([0, 4, 1, -100, 2, 3])
    p = torch.rand(6, 5, dtype=dtype, generator=gen).softmax(1)
    w = torch.rand(5, dtype=dtype, generator=gen) + 0.5
    return x, y, p, w


def _every_drop_in(lib: object) -> Callable[..., Tensor]:
    def f(x: Tensor, y: Tensor, p: Tensor, w: Tensor) -> Tensor:
        m = lib  # byhand, or a namespace of PyTorch's functions
        a = m.cross_entropy(x, y) + m.cross_entropy(x, p, weight=w, label_smoothing=0.1)  # type: ignore[attr-defined]
        b = m.cross_entropy(x, y.clamp(min=0), weight=w.detach(), ignore_index=1, reduction="none").sum()  # type: ignore[attr-defined]
        c = m.nll_loss(m.log_softmax(x, 1), y, reduction="sum")  # type: ignore[attr-defined]
        d = m.softmax(x, 1)[:, 0].sum() * m.logsumexp(x, 1).mean()  # type: ignore[attr-defined]
        return a + b + c + d + m.mse_loss(x, p)  # type: ignore[attr-defined]
    return f


class _Torch:
    cross_entropy = staticmethod(F.cross_entropy)
    nll_loss = staticmethod(F.nll_loss)
    log_softmax = staticmethod(F.log_softmax)
    softmax = staticmethod(F.softmax)
    logsumexp = staticmethod(torch.logsumexp)
    mse_loss = staticmethod(F.mse_loss)


def _value_and_grads(f: Callable[..., Tensor]) -> tuple[Tensor, ...]:
    x, y, p, w = _problem()
    leaves = [x.requires_grad_(True), p.requires_grad_(True), w.requires_grad_(True)]
    out = f(x, y, p, w)
    return (out.detach(), *torch.autograd.grad(out, leaves))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_every_drop_in_compiles_with_no_graph_break(backend: str) -> None:
    if backend == "inductor" and shutil.which("cc") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler for inductor's CPU code")
    torch._dynamo.reset()
    eager = _value_and_grads(_every_drop_in(byhand))
    compiled = _value_and_grads(torch.compile(_every_drop_in(byhand), fullgraph=True,
                                              backend=backend))
    for got, want in zip(compiled, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    for got, want in zip(eager, _value_and_grads(_every_drop_in(_Torch)), strict=True):
        torch.testing.assert_close(got, want)


def test_compiled_calls_still_check_target_values() -> None:
    torch._dynamo.reset()
    f = torch.compile(lambda x, y: byhand.cross_entropy(x, y), fullgraph=True, backend="aot_eager")
    x = torch.randn(3, 4)
    with pytest.raises(IndexError, match="target values must be class indices"):
        f(x, torch.tensor([0, 4, 1]))


@pytest.mark.parametrize("case", ["plain", "weight-none-ignore", "probabilities", "nll"])
def test_registered_operators_pass_opcheck(case: str) -> None:
    x, y, p, w = _problem(torch.float64)
    x.requires_grad_(True)
    ops = torch.ops.byhand
    if case == "plain":
        calls = [(ops.cross_entropy_loss.default, (x, y, None, -100, "mean", 0.0)),
                 (ops.cross_entropy_loss_backward.default,
                  (torch.tensor(2.0, dtype=torch.float64), x.detach(), y, None, -100, "mean", 0.0))]
    elif case == "weight-none-ignore":
        y = y.clamp(min=0)
        calls = [(ops.cross_entropy_loss.default, (x, y, w, 2, "none", 0.2))]
    elif case == "probabilities":
        calls = [(ops.cross_entropy_loss.default, (x, p.requires_grad_(True), w.requires_grad_(True),
                                              -100, "sum", 0.1)),
                 (ops.cross_entropy_loss_target_backward.default,
                  (torch.tensor(1.0, dtype=torch.float64), x.detach(), p.detach(), w.detach(),
                   -100, "mean", 0.0))]
    else:
        calls = [(ops.nll_loss.default, (x, y, w, -100, "mean")),
                 (ops.nll_loss_backward.default,
                  (torch.tensor(1.0, dtype=torch.float64, requires_grad=True), x.detach(), y, None,
                   -100, "sum"))]
    for op, args in calls:
        result = torch.library.opcheck(op, args)
        assert set(result.values()) == {"SUCCESS"}, result


OPTIONS = [
    {}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.2},
    {"weight": "w"}, {"ignore_index": 1}, {"weight": "w", "label_smoothing": 0.1, "reduction": "none"},
]


@pytest.mark.parametrize("target_kind", ["indices", "probabilities"])
@pytest.mark.parametrize("options", OPTIONS,
                         ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_batched_gradients_for_every_option(options: dict, target_kind: str) -> None:
    x, y, p, w = _problem(torch.float64)
    options = dict(options)
    if options.get("weight") == "w":
        options["weight"] = w
    if "ignore_index" in options:
        y = y.clamp(min=0)
    if target_kind == "probabilities":
        if "ignore_index" in options:
            pytest.skip("ignore_index is not defined for probability targets")
        y = p
    x.requires_grad_(True)

    def loss(z: Tensor) -> Tensor:
        return byhand.cross_entropy(z, y, **options)

    assert torch.autograd.gradcheck(loss, (x,), check_batched_grad=True, check_forward_ad=True)
    out = loss(x)
    cotangents = torch.randn(3, *out.shape, dtype=out.dtype,
                             generator=torch.Generator().manual_seed(1))
    (batched,) = torch.autograd.grad(out, x, cotangents, is_grads_batched=True, retain_graph=True)
    for k in range(3):
        (single,) = torch.autograd.grad(out, x, cotangents[k], retain_graph=True)
        torch.testing.assert_close(batched[k], single)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_batched_gradients_for_nll_and_the_elementwise_drop_ins(reduction: str) -> None:
    x, y, _, w = _problem(torch.float64)
    x.requires_grad_(True)
    fns = [lambda z: byhand.nll_loss(z, y, weight=w, reduction=reduction),
           lambda z: byhand.mse_loss(z, torch.ones_like(z), reduction=reduction),
           lambda z: byhand.softmax(z, 1), lambda z: byhand.log_softmax(z, 0),
           lambda z: byhand.logsumexp(z, 1)]
    for fn in fns:
        assert torch.autograd.gradcheck(fn, (x,), check_batched_grad=True, check_forward_ad=True)


def test_no_gradient_work_when_no_gradient_is_needed() -> None:
    """No graph node under no_grad, inference_mode or without a leaf requiring grad."""
    x, y, p, _ = _problem()
    for target in (y, p):
        assert byhand.cross_entropy(x, target).grad_fn is None
        leaf = x.clone().requires_grad_(True)
        with torch.no_grad():
            assert byhand.cross_entropy(leaf, target).grad_fn is None
        with torch.inference_mode():
            assert byhand.cross_entropy(leaf, target).grad_fn is None
        assert byhand.cross_entropy(leaf, target).grad_fn is not None
    assert byhand.nll_loss(x.log_softmax(1), y).grad_fn is None


def test_torch_func_transforms_still_work() -> None:
    x, y, _, _ = _problem(torch.float64)
    for fn_ours, fn_ref in ((byhand.cross_entropy, F.cross_entropy), (byhand.nll_loss, F.nll_loss)):
        for transform in (torch.func.grad, torch.func.jacrev, torch.func.jacfwd, torch.func.hessian):
            ours = transform(lambda z, f=fn_ours: f(z, y))(x)
            ref = transform(lambda z, f=fn_ref: f(z, y))(x)
            torch.testing.assert_close(ours, ref)
        batched = torch.func.vmap(lambda z, f=fn_ours: f(z, y))(x.expand(2, 6, 5))
        torch.testing.assert_close(batched, fn_ref(x, y).expand(2))


def test_fused_forward_backward_fast_path_equals_the_general_one() -> None:
    """Targets read in validation (none ignored) take a shorter route: same numbers."""
    gen = torch.Generator().manual_seed(2)
    for shape in ((128, 10), (7, 4, 3)):
        x = torch.randn(*shape, generator=gen, dtype=torch.float64)
        y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
        for reduction in ("mean", "sum"):
            leaf = x.clone().requires_grad_(True)
            ref = F.cross_entropy(leaf, y, reduction=reduction)
            ref.backward()
            loss, grad = losses.cross_entropy_forward_backward(x, y, reduction=reduction)
            torch.testing.assert_close(loss, ref.detach())
            torch.testing.assert_close(grad, leaf.grad)
            # the same targets with ignore_index among their values take the masked route
            loss_masked, grad_masked = losses.cross_entropy_forward_backward(
                x, y, reduction=reduction, ignore_index=int(y.flatten()[0]))
            ref_masked = F.cross_entropy(x, y, reduction=reduction, ignore_index=int(y.flatten()[0]))
            torch.testing.assert_close(loss_masked, ref_masked)
            assert grad_masked.shape == x.shape
