"""softmax, log_softmax, logsumexp and their backward passes against PyTorch."""

from __future__ import annotations

import pytest
import torch
from cases import strided
from hypothesis import given, settings
from hypothesis import strategies as st

import byhand

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3)


def _case(shape: list[int], seed: int, scale: float = 5.0) -> tuple[torch.Tensor, int]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    return x, seed % len(shape)


@given(shapes, st.integers(0, 10_000))
def test_forwards_match_pytorch(shape: list[int], seed: int) -> None:
    x, dim = _case(shape, seed)
    torch.testing.assert_close(byhand.softmax(x, dim), torch.softmax(x, dim))
    torch.testing.assert_close(byhand.log_softmax(x, dim), torch.log_softmax(x, dim))
    torch.testing.assert_close(byhand.logsumexp(x, dim), torch.logsumexp(x, dim))
    torch.testing.assert_close(byhand.logsumexp(x, dim, keepdim=True),
                               torch.logsumexp(x, dim, keepdim=True))


@given(shapes, st.integers(0, 10_000), st.booleans())
def test_backwards_match_autograd(shape: list[int], seed: int, keepdim: bool) -> None:
    x, dim = _case(shape, seed)
    for ours, fn in ((byhand.softmax_backward, torch.softmax),
                     (byhand.log_softmax_backward, torch.log_softmax)):
        leaf = x.clone().requires_grad_(True)
        out = fn(leaf, dim)
        g = torch.randn_like(out)
        out.backward(g)
        torch.testing.assert_close(ours(g, x, dim), leaf.grad)
    leaf = x.clone().requires_grad_(True)
    out = torch.logsumexp(leaf, dim, keepdim=keepdim)
    g = torch.randn_like(out)
    out.backward(g)
    torch.testing.assert_close(byhand.logsumexp_backward(g, x, dim, keepdim), leaf.grad)


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_softmax_jacobian_matches_autograd_and_its_properties(n: int) -> None:
    x = torch.randn(n, dtype=torch.float64)
    jac = byhand.softmax_jacobian(x)
    ref = torch.autograd.functional.jacobian(lambda z: torch.softmax(z, 0), x)
    torch.testing.assert_close(jac, ref)
    torch.testing.assert_close(jac, jac.T)
    torch.testing.assert_close(jac.sum(1), torch.zeros(n, dtype=torch.float64))
    assert torch.linalg.eigvalsh(jac).min() > -1e-12


def test_softmax_jacobian_is_batched() -> None:
    x = torch.randn(3, 4, dtype=torch.float64)
    jac = byhand.softmax_jacobian(x)
    assert jac.shape == (3, 4, 4)
    for row in range(3):
        torch.testing.assert_close(jac[row], byhand.softmax_jacobian(x[row]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_stable_at_extreme_logits(dtype: torch.dtype) -> None:
    x = torch.tensor([1000.0, 1001.0, -1000.0], dtype=dtype)
    exact = x.double()  # the values the dtype can hold: bfloat16 rounds 1001 to 1000
    for fn, ref in ((byhand.softmax, torch.softmax), (byhand.log_softmax, torch.log_softmax)):
        ours = fn(x, 0)
        assert ours.dtype == dtype and torch.isfinite(ours).all()
        torch.testing.assert_close(ours, ref(x, 0))
        torch.testing.assert_close(ours.double(), ref(exact, 0), check_dtype=False,
                                   rtol=1e-2 if dtype != torch.float32 else 1e-6, atol=1e-5)
    assert torch.isfinite(byhand.logsumexp(x, 0))


def test_logsumexp_of_infinite_rows_follows_pytorch() -> None:
    x = torch.tensor([[float("-inf"), float("-inf")], [float("inf"), 1.0], [0.0, 1.0]])
    torch.testing.assert_close(byhand.logsumexp(x, 1), torch.logsumexp(x, 1))


def _autograd(fn, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    leaf = x.detach().clone().requires_grad_(True)
    fn(leaf).backward(g)
    return leaf.grad


def _max_error(result: torch.Tensor, exact: torch.Tensor) -> float:
    return float((result.double() - exact).abs().max()) if exact.numel() else 0.0


PAIRS = [
    ("softmax", torch.softmax, byhand.softmax, byhand.softmax_backward),
    ("log_softmax", torch.log_softmax, byhand.log_softmax, byhand.log_softmax_backward),
    ("logsumexp", torch.logsumexp, byhand.logsumexp, byhand.logsumexp_backward),
]


@settings(max_examples=40)
@given(shapes, st.integers(0, 10_000), st.sampled_from([torch.float16, torch.bfloat16]))
def test_half_precision_is_as_accurate_as_pytorch(shape: list[int], seed: int,
                                                  dtype: torch.dtype) -> None:
    """Forward and backward error against float64 no larger than PyTorch's, up to one ulp."""
    x, dim = _case(shape, seed)
    x = x.to(dtype)
    ulp = torch.finfo(dtype).eps
    for _, ref, ours, ours_backward in PAIRS:
        exact = ref(x.double(), dim)
        g = torch.randn(exact.shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
        exact_grad = _autograd(lambda z, ref=ref: ref(z, dim), x.double(), g.double())
        results = ((ours(x, dim), ref(x, dim), exact),
                   (ours_backward(g, x, dim), _autograd(lambda z, ref=ref: ref(z, dim), x, g),
                    exact_grad))
        for got, theirs, truth in results:
            assert got.dtype == theirs.dtype == dtype
            scale = float(truth.abs().max())
            assert _max_error(got, truth) <= 1.05 * _max_error(theirs, truth) + ulp * scale


@settings(max_examples=40)
@given(st.lists(st.integers(1, 4), min_size=2, max_size=4), st.integers(0, 10_000),
       st.booleans())
def test_noncontiguous_inputs_and_tuple_dims_match_pytorch(shape: list[int], seed: int,
                                                           keepdim: bool) -> None:
    x, dim = _case(shape, seed)
    x = strided(x).transpose(0, -1)
    assert not x.is_contiguous() or x.numel() < 2
    gen = torch.Generator().manual_seed(seed)
    for _, ref, ours, ours_backward in PAIRS[:2]:
        torch.testing.assert_close(ours(x, dim), ref(x, dim))
        g = strided(torch.randn(x.shape, generator=gen, dtype=x.dtype))
        torch.testing.assert_close(ours_backward(g, x, dim),
                                   _autograd(lambda z, ref=ref: ref(z, dim), x, g))
    n_dims = 1 + seed % x.dim()
    dims = tuple(int(d) for d in torch.randperm(x.dim(), generator=gen)[:n_dims])
    dims = tuple(d - x.dim() if i % 2 else d for i, d in enumerate(dims))  # some negative
    expected = torch.logsumexp(x, dims, keepdim=keepdim)
    torch.testing.assert_close(byhand.logsumexp(x, dims, keepdim), expected)
    g = torch.randn(expected.shape, generator=gen, dtype=x.dtype)
    torch.testing.assert_close(
        byhand.logsumexp_backward(g, x, dims, keepdim),
        _autograd(lambda z: torch.logsumexp(z, dims, keepdim=keepdim), x, g))
