"""Unit tests of byhand.layers: Linear, ReLU and Sequential against torch.nn and autograd."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from byhand import assert_close
from byhand.layers import Layer, Linear, ReLU, Sequential

DTYPES = (torch.float32, torch.float64)

sizes = st.integers(min_value=1, max_value=9)
dtypes = st.sampled_from(DTYPES)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _pair(
    in_features: int, out_features: int, bias: bool, dtype: torch.dtype, seed: int
) -> tuple[Linear, nn.Linear]:
    """Our layer and torch's, holding the same numbers."""
    torch.manual_seed(seed)
    ref = nn.Linear(in_features, out_features, bias=bias, dtype=dtype)
    ours = Linear.from_tensors(ref.weight, ref.bias)
    return ours, ref


# ------------------------------------------------------------------------------ Linear init


def _init_pair(
    in_features: int, out_features: int, bias: bool, dtype: torch.dtype
) -> tuple[Linear, nn.Linear]:
    torch.manual_seed(123)
    ours = Linear(in_features, out_features, bias=bias, dtype=dtype)
    torch.manual_seed(123)
    ref = nn.Linear(in_features, out_features, bias=bias, dtype=dtype)
    assert ours.weight.dtype == dtype and ours.weight.shape == ref.weight.shape
    assert (ours.bias is None) == (ref.bias is None) == (not bias)
    return ours, ref


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("in_features", "out_features"), [(1, 1), (2, 4), (784, 50), (50, 10)])
def test_linear_init_equals_torch_under_the_same_seed(
    in_features: int, out_features: int, bias: bool
) -> None:
    ours, ref = _init_pair(in_features, out_features, bias, torch.float32)
    assert torch.equal(ours.weight, ref.weight.detach())
    if ours.bias is not None:
        assert torch.equal(ours.bias, ref.bias.detach())


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("in_features", "out_features"), [(1, 1), (2, 4), (784, 50), (50, 10)])
def test_linear_init_float64_agrees_with_torch_to_rounding(
    in_features: int, out_features: int, bias: bool
) -> None:
    ours, ref = _init_pair(in_features, out_features, bias, torch.float64)
    torch.testing.assert_close(ours.weight, ref.weight.detach(), rtol=1e-15, atol=0)
    if ours.bias is not None:
        torch.testing.assert_close(ours.bias, ref.bias.detach(), rtol=1e-15, atol=0)


@pytest.mark.parametrize(("in_features", "out_features"), [(2, 4), (50, 10)])
def test_linear_init_float64_is_bit_exact(in_features: int, out_features: int) -> None:
    ours, ref = _init_pair(in_features, out_features, True, torch.float64)
    assert torch.equal(ours.weight, ref.weight.detach())


@pytest.mark.parametrize("bias", [True, False])
def test_linear_init_with_a_generator_matches_torch_and_leaves_global_rng_alone(bias: bool) -> None:
    torch.manual_seed(7)
    ref = nn.Linear(5, 3, bias=bias)
    torch.manual_seed(99)
    state = torch.get_rng_state()
    ours = Linear(5, 3, bias=bias, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state), "a generator must not touch the global RNG"
    assert torch.equal(ours.weight, ref.weight.detach())
    if bias:
        assert ours.bias is not None
        assert torch.equal(ours.bias, ref.bias.detach())
    again = Linear(5, 3, bias=bias, generator=torch.Generator().manual_seed(7))
    assert torch.equal(again.weight, ours.weight)


def test_linear_init_bound_is_one_over_sqrt_fan_in() -> None:
    layer = Linear(400, 300, generator=torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(400)
    assert layer.bias is not None
    for p in (layer.weight, layer.bias):
        assert float(p.abs().max()) <= bound
    # 120,000 uniform draws fill the interval: the extremes come within 1% of the bound.
    assert float(layer.weight.abs().max()) > 0.99 * bound
    assert abs(float(layer.weight.mean())) < 0.01 * bound


def test_from_tensors_copies() -> None:
    w, b = torch.randn(3, 2), torch.randn(3)
    layer = Linear.from_tensors(w, b)
    w.zero_()
    b.zero_()
    assert layer.bias is not None
    assert float(layer.weight.abs().sum()) > 0 and float(layer.bias.abs().sum()) > 0
    assert layer.weight_grad is None and layer.bias_grad is None
    assert Linear.from_tensors(torch.randn(3, 2)).bias is None


def test_from_tensors_detaches_parameters() -> None:
    ref = nn.Linear(4, 2)
    layer = Linear.from_tensors(ref.weight, ref.bias)
    assert not layer.weight.requires_grad
    assert layer.bias is not None and not layer.bias.requires_grad


def test_linear_repr() -> None:
    assert repr(Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"


# --------------------------------------------------------------------- Linear forward/backward


@settings(max_examples=60, deadline=None)
@given(n=sizes, in_features=sizes, out_features=sizes, bias=st.booleans(), dtype=dtypes,
       seed=seeds)
def test_linear_forward_equals_torch(
    n: int, in_features: int, out_features: int, bias: bool, dtype: torch.dtype, seed: int
) -> None:
    ours, ref = _pair(in_features, out_features, bias, dtype, seed)
    x = torch.randn(n, in_features, dtype=dtype)
    y = ours.forward(x)
    assert y.shape == (n, out_features) and y.dtype == dtype
    assert_close(y, ref(x), name="forward")
    assert_close(ours(x), y, name="__call__")


@settings(max_examples=60, deadline=None)
@given(n=sizes, in_features=sizes, out_features=sizes, bias=st.booleans(), dtype=dtypes,
       seed=seeds)
def test_linear_backward_equals_autograd(
    n: int, in_features: int, out_features: int, bias: bool, dtype: torch.dtype, seed: int
) -> None:
    ours, ref = _pair(in_features, out_features, bias, dtype, seed)
    x = torch.randn(n, in_features, dtype=dtype, requires_grad=True)
    delta = torch.randn(n, out_features, dtype=dtype)
    ref(x).backward(delta)

    ours.forward(x.detach())
    dx = ours.backward(delta)
    assert ours.weight_grad is not None and ref.weight.grad is not None
    assert dx.shape == x.shape and ours.weight_grad.shape == ours.weight.shape
    assert_close(dx, x.grad, name="dL/dx")
    assert_close(ours.weight_grad, ref.weight.grad, name="dL/dW")
    if bias:
        assert ours.bias_grad is not None
        assert_close(ours.bias_grad, ref.bias.grad, name="dL/db")
    else:
        assert ours.bias_grad is None


@settings(max_examples=30, deadline=None)
@given(n=sizes, in_features=sizes, out_features=sizes, dtype=dtypes, seed=seeds)
def test_linear_backward_matches_index_notation(
    n: int, in_features: int, out_features: int, dtype: torch.dtype, seed: int
) -> None:
    """dW_jk = δ_nj x_nk, db_j = Σ_n δ_nj, dx_nk = δ_nj W_jk, spelled with einsum."""
    gen = torch.Generator().manual_seed(seed)
    layer = Linear(in_features, out_features, dtype=dtype, generator=gen)
    x = torch.randn(n, in_features, dtype=dtype, generator=gen)
    delta = torch.randn(n, out_features, dtype=dtype, generator=gen)
    layer.forward(x)
    dx = layer.backward(delta)
    assert layer.weight_grad is not None and layer.bias_grad is not None
    assert_close(layer.weight_grad, torch.einsum("nj,nk->jk", delta, x), name="dW")
    assert_close(layer.bias_grad, torch.einsum("nj->j", delta), name="db")
    assert_close(dx, torch.einsum("nj,jk->nk", delta, layer.weight), name="dx")


def test_linear_parameters_yield_values_and_gradients() -> None:
    layer = Linear(3, 2)
    assert [g for _, g in layer.parameters()] == [None, None]
    layer.forward(torch.randn(4, 3))
    layer.backward(torch.ones(4, 2))
    params = list(layer.parameters())
    assert params[0][0] is layer.weight and params[0][1] is layer.weight_grad
    assert params[1][0] is layer.bias and params[1][1] is layer.bias_grad
    assert torch.equal(params[1][1], torch.full((2,), 4.0))
    assert len(list(Linear(3, 2, bias=False).parameters())) == 1


def test_linear_backward_uses_the_latest_forward() -> None:
    layer = Linear(2, 2, generator=torch.Generator().manual_seed(0))
    layer.forward(torch.ones(1, 2))
    x = torch.tensor([[3.0, -1.0]])
    layer.forward(x)
    layer.backward(torch.tensor([[1.0, 0.0]]))
    assert layer.weight_grad is not None
    assert torch.equal(layer.weight_grad, torch.tensor([[3.0, -1.0], [0.0, 0.0]]))


def test_linear_writes_the_next_gradients_into_the_previous_ones() -> None:
    """As ``.grad`` after ``zero_grad(set_to_none=False)``: the same tensors, new values."""
    gen = torch.Generator().manual_seed(0)
    layer = Linear(3, 2, generator=gen)
    first = [torch.randn(4, 3, generator=gen) for _ in range(2)]
    deltas = [torch.randn(4, 2, generator=gen) for _ in range(2)]
    layer.forward(first[0])
    layer.backward(deltas[0])
    dw, db = layer.weight_grad, layer.bias_grad
    kept = dw.clone()
    layer.forward(first[1])
    layer.backward(deltas[1])
    assert layer.weight_grad is dw and layer.bias_grad is db
    assert torch.equal(dw, deltas[1].T @ first[1]) and torch.equal(db, deltas[1].sum(0))
    assert torch.equal(kept, deltas[0].T @ first[0])  # a clone keeps a step's gradient


def test_linear_makes_new_gradients_where_the_old_cannot_take_them() -> None:
    """A new dtype, or an autograd graph to record (double backward), gets new tensors."""
    layer = Linear(3, 2, generator=torch.Generator().manual_seed(0))
    layer.forward(torch.ones(4, 3))
    layer.backward(torch.ones(4, 2))
    old = layer.weight_grad
    layer.weight, layer.bias = layer.weight.double(), torch.zeros(2, dtype=torch.float64)
    layer.forward(torch.ones(4, 3, dtype=torch.float64))
    layer.backward(torch.ones(4, 2, dtype=torch.float64))
    assert layer.weight_grad is not old and layer.weight_grad.dtype == torch.float64
    old = layer.weight_grad
    delta = torch.ones(4, 2, dtype=torch.float64, requires_grad=True)
    layer.forward(torch.ones(4, 3, dtype=torch.float64))
    layer.backward(delta)
    assert layer.weight_grad is not old and layer.weight_grad.requires_grad
    (grad_delta,) = torch.autograd.grad(layer.weight_grad.sum(), delta)
    assert torch.equal(grad_delta, torch.full((4, 2), 3.0, dtype=torch.float64))


def test_linear_backward_with_leading_dimensions() -> None:
    ours, ref = _pair(3, 2, True, torch.float64, 0)
    x = torch.randn(4, 5, 3, dtype=torch.float64, requires_grad=True)
    delta = torch.randn(4, 5, 2, dtype=torch.float64)
    ref(x).backward(delta)
    ours.forward(x.detach())
    assert_close(ours.backward(delta), x.grad, name="dL/dx")


# -------------------------------------------------------------------------------------- ReLU


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_forward_and_backward_including_zeros(dtype: torch.dtype) -> None:
    x = torch.tensor([[-2.0, -0.0, 0.0, 0.5], [3.0, 0.0, -1e-30, 1e-30]], dtype=dtype)
    relu = ReLU()
    y = relu.forward(x)
    assert torch.equal(y, F.relu(x))
    delta = torch.arange(1.0, 9.0, dtype=dtype).view(2, 4)
    leaf = x.clone().requires_grad_(True)
    F.relu(leaf).backward(delta)
    dx = relu.backward(delta)
    assert torch.equal(dx, leaf.grad)
    # The subgradient PyTorch picks at exactly 0 is 0: the mask is x > 0.
    assert torch.equal(dx, torch.tensor([[0, 0, 0, 4], [5, 0, 0, 8]], dtype=dtype))


@settings(max_examples=40, deadline=None)
@given(n=sizes, features=sizes, dtype=dtypes, seed=seeds)
def test_relu_matches_autograd_on_random_input(
    n: int, features: int, dtype: torch.dtype, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    # Round to a coarse grid so exact zeros show up often.
    x = torch.randint(-3, 4, (n, features), generator=gen).to(dtype) / 2
    delta = torch.randn(n, features, dtype=dtype, generator=gen)
    leaf = x.clone().requires_grad_(True)
    F.relu(leaf).backward(delta)
    relu = ReLU()
    assert torch.equal(relu(x), F.relu(x))
    assert torch.equal(relu.backward(delta), leaf.grad)


def test_relu_has_no_parameters_and_a_repr() -> None:
    assert list(ReLU().parameters()) == []
    assert repr(ReLU()) == "ReLU()"


def test_relu_of_minus_infinity_is_zero() -> None:
    x = torch.tensor([-math.inf, -1.0, 2.0, math.inf])
    assert torch.equal(ReLU().forward(x), F.relu(x))


# -------------------------------------------------------------------------------- Sequential


def _mlp_pair(dtype: torch.dtype, seed: int) -> tuple[Sequential, nn.Sequential]:
    torch.manual_seed(seed)
    ref = nn.Sequential(
        nn.Linear(12, 8, dtype=dtype), nn.ReLU(), nn.Linear(8, 5, dtype=dtype), nn.ReLU(),
        nn.Linear(5, 3, bias=False, dtype=dtype),
    )
    ours = Sequential(
        Linear.from_tensors(ref[0].weight, ref[0].bias), ReLU(),
        Linear.from_tensors(ref[2].weight, ref[2].bias), ReLU(),
        Linear.from_tensors(ref[4].weight),
    )
    return ours, ref


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sequential_forward_backward_equal_torch(dtype: torch.dtype, seed: int) -> None:
    ours, ref = _mlp_pair(dtype, seed)
    x = torch.randn(16, 12, dtype=dtype, requires_grad=True)
    target = torch.randint(0, 3, (16,))
    logits = ref(x)
    F.cross_entropy(logits, target).backward()

    our_logits = ours.forward(x.detach())
    assert_close(our_logits, logits, name="logits")
    delta = (torch.softmax(our_logits, 1) - F.one_hot(target, 3).to(dtype)) / 16
    dx = ours.backward(delta)
    assert_close(dx, x.grad, name="dL/dx")
    ref_params = list(ref.parameters())
    our_params = list(ours.parameters())
    assert len(our_params) == len(ref_params) == 5
    for (value, grad), ref_param in zip(our_params, ref_params, strict=True):
        assert torch.equal(value, ref_param.detach())
        assert grad is not None
        assert_close(grad, ref_param.grad, name="param grad")


def test_sequential_parameters_order_follows_layers() -> None:
    first, second = Linear(4, 3), Linear(3, 2, bias=False)
    model = Sequential(first, ReLU(), second)
    values = [p for p, _ in model.parameters()]
    expected = [first.weight, first.bias, second.weight]
    assert len(values) == len(expected)
    assert all(v is e for v, e in zip(values, expected, strict=True))
    assert all(g is None for _, g in model.parameters())


def test_sequential_call_repr_and_empty() -> None:
    model = Sequential(Linear(2, 2), ReLU())
    x = torch.randn(3, 2)
    assert torch.equal(model(x), model.forward(x))
    assert repr(model).startswith("Sequential(\n  Linear(in_features=2")
    empty = Sequential()
    assert torch.equal(empty.forward(x), x)
    assert torch.equal(empty.backward(x), x)


def test_layer_interface_is_abstract() -> None:
    layer = Layer()
    with pytest.raises(NotImplementedError):
        layer.forward(torch.zeros(1))
    with pytest.raises(NotImplementedError):
        layer.backward(torch.zeros(1))
    assert list(layer.parameters()) == []


# ------------------------------------------------------------------------------------ errors


def test_linear_backward_before_forward() -> None:
    with pytest.raises(RuntimeError, match=r"Linear\.backward: call forward first"):
        Linear(2, 3).backward(torch.zeros(1, 3))
    with pytest.raises(RuntimeError, match=r"Linear\.backward: call forward first"):
        Linear.from_tensors(torch.zeros(3, 2)).backward(torch.zeros(1, 3))


def test_relu_backward_before_forward() -> None:
    with pytest.raises(RuntimeError, match=r"ReLU\.backward: call forward first"):
        ReLU().backward(torch.zeros(2))


def test_sequential_backward_before_forward_names_the_last_layer() -> None:
    model = Sequential(Linear(2, 3), ReLU())
    with pytest.raises(RuntimeError, match=r"ReLU\.backward: call forward first"):
        model.backward(torch.zeros(1, 3))


def test_linear_wrong_feature_count() -> None:
    layer = Linear(4, 2)
    with pytest.raises(ValueError, match=r"x must have 4 features .* got shape \(3, 5\)"):
        layer.forward(torch.zeros(3, 5))
    model = Sequential(Linear(4, 3), ReLU(), Linear(2, 1))
    with pytest.raises(ValueError, match=r"x must have 2 features .* got shape \(6, 3\)"):
        model.forward(torch.zeros(6, 4))


@pytest.mark.parametrize(("in_features", "out_features"), [(0, 3), (3, 0), (-1, 2), (2, -5)])
def test_linear_non_positive_sizes(in_features: int, out_features: int) -> None:
    with pytest.raises(ValueError, match="in_features and out_features must be positive") as info:
        Linear(in_features, out_features)
    assert f"got {in_features} and {out_features}" in str(info.value)
