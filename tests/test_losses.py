"""Forward and gradient parity of byhand's losses with torch.nn.functional."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cases import Problem, outcome, problems
from hypothesis import given, settings
from hypothesis import strategies as st

import byhand
from byhand import losses, mse


def _tolerances(dtype: torch.dtype) -> dict:
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}


def _reference(p: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    x = p.input.clone().requires_grad_(True)
    loss = F.cross_entropy(x, p.target, **p.kwargs())
    loss.backward(p.grad_output)
    return loss.detach(), x.grad


def _assert_matches_pytorch(p: Problem) -> None:
    ref_loss, ref_grad = _reference(p)
    tol = _tolerances(p.input.dtype)
    torch.testing.assert_close(losses.cross_entropy(p.input, p.target, **p.kwargs()),
                               ref_loss, equal_nan=True, **tol)
    grad = losses.cross_entropy_backward(p.grad_output, p.input, p.target, **p.kwargs())
    torch.testing.assert_close(grad, ref_grad, equal_nan=True, **tol)


@given(problems())
def test_cross_entropy_forward_and_backward_match_pytorch(p: Problem) -> None:
    _assert_matches_pytorch(p)


@settings(max_examples=40)
@given(problems(max_spatial=3, noncontiguous=True))
def test_noncontiguous_and_k_dimensional_inputs_match_pytorch(p: Problem) -> None:
    assert p.input.numel() < 2 or not p.input.is_contiguous()
    _assert_matches_pytorch(p)
    x = p.input.clone().requires_grad_(True)
    byhand.cross_entropy(x, p.target, **p.kwargs()).backward(p.grad_output)
    torch.testing.assert_close(x.grad, _reference(p)[1], equal_nan=True,
                               **_tolerances(p.input.dtype))


def _as_float64(p: Problem) -> Problem:
    """The same problem on the same (already rounded) values, computed in float64."""
    def up(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else (t.double() if t.is_floating_point() else t)
    return Problem(up(p.input), up(p.target), up(p.weight), p.ignore_index, p.reduction,
                   p.label_smoothing, up(p.grad_output))


def _max_error(result: torch.Tensor, exact: torch.Tensor) -> float:
    """Largest absolute difference, where a nan in both counts as agreement."""
    assert torch.equal(result.isnan(), exact.isnan())
    diff = (result.double() - exact).abs()
    return float(diff[~exact.isnan()].max()) if (~exact.isnan()).any() else 0.0


@settings(max_examples=60)
@given(st.sampled_from([torch.float16, torch.bfloat16])
       .flatmap(lambda dtype: problems(dtype=dtype, scale=3.0)))
def test_half_precision_is_as_accurate_as_pytorch(p: Problem) -> None:
    """Error against float64 no larger than PyTorch's, up to one unit in the last place."""
    ref_loss, ref_grad = _reference(p)
    exact_loss, exact_grad = _reference(_as_float64(p))
    loss = losses.cross_entropy(p.input, p.target, **p.kwargs())
    grad = losses.cross_entropy_backward(p.grad_output, p.input, p.target, **p.kwargs())
    ulp = torch.finfo(p.input.dtype).eps
    for ours, theirs, exact in ((loss, ref_loss, exact_loss), (grad, ref_grad, exact_grad)):
        assert ours.dtype == theirs.dtype
        scale = float(exact.abs().nan_to_num().max()) if exact.numel() else 0.0
        assert _max_error(ours, exact) <= 1.05 * _max_error(theirs, exact) + ulp * scale + 1e-7


@settings(max_examples=40)
@given(problems(prob_targets=False), st.sampled_from([torch.uint8, torch.int32]))
def test_integer_target_dtypes_behave_as_pytorch(p: Problem, target_dtype: torch.dtype) -> None:
    """uint8 targets work (an ignored -100 wraps to 156, an ordinary index); int32 is refused."""
    target = p.target.to(target_dtype)
    expected, reference_error = outcome(lambda: _reference(Problem(
        p.input, target, p.weight, p.ignore_index, p.reduction, p.label_smoothing,
        p.grad_output)))
    got, error = outcome(lambda: (
        losses.cross_entropy(p.input, target, **p.kwargs()),
        losses.cross_entropy_backward(p.grad_output, p.input, target, **p.kwargs())))
    if reference_error is not None:
        assert isinstance(error, type(reference_error)), (reference_error, error)
        assert "target" in str(error)
        return
    assert error is None, error
    for ours, ref in zip(got, expected, strict=True):
        torch.testing.assert_close(ours, ref, equal_nan=True, **_tolerances(p.input.dtype))


@given(problems())
def test_drop_in_cross_entropy_backward_is_ours_and_matches(p: Problem) -> None:
    ref_loss, ref_grad = _reference(p)
    x = p.input.clone().requires_grad_(True)
    loss = byhand.cross_entropy(x, p.target, **p.kwargs())
    assert loss.grad_fn is not None and "CrossEntropyBackward" in type(loss.grad_fn).__name__
    loss.backward(p.grad_output)
    tol = _tolerances(p.input.dtype)
    torch.testing.assert_close(loss.detach(), ref_loss, equal_nan=True, **tol)
    torch.testing.assert_close(x.grad, ref_grad, equal_nan=True, **tol)


@given(problems())
def test_fused_forward_backward_matches_pytorch(p: Problem) -> None:
    if p.reduction == "none":
        p.reduction = "mean"
    p.grad_output = torch.ones((), dtype=p.input.dtype)
    ref_loss, ref_grad = _reference(p)
    loss, grad = losses.cross_entropy_forward_backward(p.input, p.target, **p.kwargs())
    tol = _tolerances(p.input.dtype)
    torch.testing.assert_close(loss, ref_loss, equal_nan=True, **tol)
    torch.testing.assert_close(grad, ref_grad, equal_nan=True, **tol)


@given(problems(prob_targets=False, smoothing=False))
def test_nll_loss_forward_and_backward_match_pytorch(p: Problem) -> None:
    logp = F.log_softmax(p.input, dim=0 if p.input.dim() == 1 else 1)
    kwargs = {k: v for k, v in p.kwargs().items() if k != "label_smoothing"}
    x = logp.clone().requires_grad_(True)
    ref = F.nll_loss(x, p.target, **kwargs)
    ref.backward(p.grad_output)
    tol = _tolerances(p.input.dtype)
    torch.testing.assert_close(losses.nll_loss(logp, p.target, **kwargs), ref.detach(),
                               equal_nan=True, **tol)
    torch.testing.assert_close(losses.nll_loss_backward(p.grad_output, logp, p.target, **kwargs),
                               x.grad, equal_nan=True, **tol)
    ours = logp.clone().requires_grad_(True)
    byhand.nll_loss(ours, p.target, **kwargs).backward(p.grad_output)
    torch.testing.assert_close(ours.grad, x.grad, equal_nan=True, **tol)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_all_ignored_targets_behave_as_pytorch(reduction: str, weighted: bool,
                                               smoothing: float) -> None:
    x = torch.randn(4, 3, dtype=torch.float64)
    target = torch.full((4,), -100)
    weight = torch.rand(3, dtype=torch.float64) + 0.1 if weighted else None
    p = Problem(x, target, weight, -100, reduction, smoothing,
                torch.ones(() if reduction != "none" else (4,), dtype=torch.float64))
    ref_loss, ref_grad = _reference(p)
    loss = losses.cross_entropy(x, target, **p.kwargs())
    grad = losses.cross_entropy_backward(p.grad_output, x, target, **p.kwargs())
    torch.testing.assert_close(loss, ref_loss, equal_nan=True)
    if reduction == "mean":
        assert torch.isnan(loss)
    torch.testing.assert_close(grad, ref_grad)
    assert torch.equal(grad, torch.zeros_like(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("prob", [False, True])
def test_huge_logits_give_finite_loss_and_gradient(dtype: torch.dtype, prob: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(16, 10, generator=gen, dtype=dtype) * 1e4)
    target = (torch.rand(16, 10, generator=gen, dtype=dtype).softmax(1) if prob
              else torch.randint(0, 10, (16,), generator=gen))
    p = Problem(x, target, None, -100, "mean", 0.1, torch.ones((), dtype=dtype))
    ref_loss, ref_grad = _reference(p)
    loss, grad = losses.cross_entropy_forward_backward(x, target, label_smoothing=0.1)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(grad, ref_grad)


def test_gradient_of_mean_without_options_is_softmax_minus_onehot_over_n() -> None:
    x = torch.randn(5, 4, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 1, 2])
    grad = losses.cross_entropy_backward(torch.tensor(1.0, dtype=torch.float64), x, y)
    expected = (x.softmax(1) - F.one_hot(y, 4)) / 5
    torch.testing.assert_close(grad, expected)


def test_nll_gradient_is_minus_one_over_n_at_the_target_only() -> None:
    logp = torch.randn(3, 4)
    y = torch.tensor([2, 0, 2])
    grad = losses.nll_loss_backward(torch.tensor(1.0), logp, y)
    torch.testing.assert_close(grad, -F.one_hot(y, 4).float() / 3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_and_backward_match_pytorch(reduction: str) -> None:
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 3, dtype=torch.float64)
    ref = F.mse_loss(x, t, reduction=reduction)
    g = torch.randn_like(ref)
    ref.backward(g)
    torch.testing.assert_close(mse.mse_loss(x.detach(), t, reduction=reduction), ref.detach())
    torch.testing.assert_close(mse.mse_loss_backward(g, x.detach(), t, reduction), x.grad)


def test_uint8_targets_are_accepted_like_pytorch() -> None:
    x = torch.randn(3, 4)
    y = torch.tensor([0, 1, 3], dtype=torch.uint8)
    torch.testing.assert_close(byhand.cross_entropy(x, y), F.cross_entropy(x, y))
