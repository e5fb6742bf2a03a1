"""Unit tests of byhand.check: compare, assert_close, the gradients and check_backward."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from byhand.check import (
    BackwardReport,
    Comparison,
    GradientCheck,
    assert_close,
    autograd_gradient,
    check_backward,
    compare,
    numerical_gradient,
)


def _logits(n: int = 5, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=gen, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=gen)
    return x, y


def _ce_backward(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.softmax(x, 1)
    return g * (s - F.one_hot(y, x.shape[1])) / x.shape[0]


# ----------------------------------------------------------------------------- compare


def test_compare_exact_and_close() -> None:
    a = torch.tensor([1.0, 2.0, 3.0])
    result = compare("same", a, a.clone())
    assert result == Comparison("same", exact=True, close=True, max_abs_diff=0.0)


def test_compare_close_but_not_exact() -> None:
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    result = compare("near", a + 1e-12, a)
    assert not result.exact
    assert result.close
    assert result.max_abs_diff == pytest.approx(1e-12, rel=1e-3)


def test_compare_not_close_reports_max_diff() -> None:
    a = torch.zeros(4)
    b = torch.tensor([0.0, 0.5, -2.0, 0.1])
    result = compare("far", a, b)
    assert (result.exact, result.close) == (False, False)
    assert result.max_abs_diff == pytest.approx(2.0)


def test_compare_custom_tolerance() -> None:
    a, b = torch.tensor([1.0]), torch.tensor([1.1])
    assert not compare("tight", a, b).close
    assert compare("loose", a, b, atol=0.2).close


def test_compare_converts_reference_dtype() -> None:
    a = torch.tensor([0.5], dtype=torch.float32)
    b = torch.tensor([0.5], dtype=torch.float64)
    assert compare("dtype", a, b).exact


def test_compare_shape_mismatch_names_argument() -> None:
    with pytest.raises(ValueError, match=r"compare\('dW'\).*ours.*\(2, 3\).*got \(3, 2\)"):
        compare("dW", torch.zeros(3, 2), torch.zeros(2, 3))


def test_compare_str_is_one_line_report_verdict_first_phone_width() -> None:
    exact = str(compare("dW", torch.ones(2), torch.ones(2)))
    approximate = str(compare("d/dlogits", torch.ones(2), torch.ones(2) + 1e-6))
    different = str(compare("db", torch.ones(2), 2 * torch.ones(2)))
    assert exact == "✓ exact        max diff 0         dW"
    assert approximate == "✓ approximate  max diff 9.54e-07  d/dlogits"
    assert different == "✗ not close    max diff 1.00e+00  db"
    for line in (exact, approximate, different):
        assert "\n" not in line and len(line) <= 48  # a 390-px phone column


def test_compare_empty_tensor() -> None:
    assert compare("empty", torch.zeros(0), torch.zeros(0)).max_abs_diff == 0.0


def test_assert_close_takes_pytorchs_argument_order() -> None:
    a = torch.ones(3)
    assert assert_close(a, a, name="ok").close
    assert assert_close(a, a + 1e-3, atol=1e-2).close
    with pytest.raises(AssertionError, match=r"gradient mismatch: ✗ not close .* bad$"):
        assert_close(a, 2 * a, name="bad")
    with pytest.raises(TypeError, match="takes 2 positional arguments but 3"):
        assert_close(a, a, a)


def test_assert_close_old_argument_order_is_a_deprecated_alias() -> None:
    a = torch.ones(3)
    with pytest.warns(DeprecationWarning, match=r"assert_close\(ours, reference, name=name\)"):
        assert assert_close("ok", a, a + 1e-3, 0.0, 1e-2).close
    with pytest.warns(DeprecationWarning), pytest.raises(AssertionError, match=r"bad$"):
        assert_close("bad", a, 2 * a)


# ------------------------------------------------------------------ numerical gradient


def test_numerical_gradient_of_cubic_sum() -> None:
    x = torch.tensor([[-1.5, 0.0, 0.5], [2.0, -0.25, 1.0]], dtype=torch.float64)
    estimate = numerical_gradient(lambda t: (t**3).sum(), x)
    assert estimate.dtype == torch.float64
    torch.testing.assert_close(estimate, 3 * x**2, rtol=1e-7, atol=1e-7)


def test_numerical_gradient_leaves_input_untouched_and_converts_float32() -> None:
    x = torch.tensor([0.3, -0.7], dtype=torch.float32)
    before = x.clone()
    estimate = numerical_gradient(lambda t: (t.sin()).sum(), x)
    assert torch.equal(x, before)
    assert estimate.dtype == torch.float64
    torch.testing.assert_close(estimate, x.double().cos(), rtol=1e-7, atol=1e-7)


def test_autograd_gradient_of_cubic_sum_and_no_side_effects() -> None:
    x = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    grad = autograd_gradient(lambda t: (t**3).sum(), x)
    assert torch.equal(grad, 3 * x**2)
    assert not x.requires_grad and x.grad is None


# --------------------------------------------------------------------- check_backward


def test_check_backward_correct_backward_passes() -> None:
    x, y = _logits()
    report = check_backward("ce", F.cross_entropy, _ce_backward, {"logits": x, "target": y})
    assert isinstance(report, BackwardReport)
    assert report.passed and report.hints == ()
    (grad,) = report.gradients
    assert isinstance(grad, GradientCheck)
    assert grad.name == "d/d logits" and grad.shape == (5, 4)
    assert grad.vs_autograd is not None and grad.vs_autograd.close
    assert grad.vs_numerical is not None and grad.vs_numerical.close
    assert grad.max_rel_diff < 1e-10
    assert str(report).splitlines()[0] == "ce: PASSED"
    assert report.assert_passed() is report


def test_check_backward_constant_ratio_names_the_count() -> None:
    x, y = _logits(n=6)

    def missing_mean(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _ce_backward(g, x, y) * x.shape[0]

    report = check_backward("missing /N", F.cross_entropy, missing_mean, [x, y])
    assert not report.passed
    text = str(report)
    assert "FAILED" in text and "WRONG" in text and "worst entry" in text
    assert any("constant 6 everywhere" in h and "batch size" in h for h in report.hints)
    with pytest.raises(AssertionError, match="constant 6"):
        report.assert_passed()


def test_check_backward_inverse_ratio_and_sign_flip() -> None:
    x, y = _logits()

    def halved(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _ce_backward(g, x, y) / 2

    def flipped(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -_ce_backward(g, x, y)

    half = check_backward("half", F.cross_entropy, halved, [x, y])
    assert any("constant 0.5" in h and "1/2" in h for h in half.hints)
    sign = check_backward("sign", F.cross_entropy, flipped, [x, y])
    assert any("sign is flipped" in h for h in sign.hints)


def test_check_backward_per_row_ratio_flags_ignored_grad_output() -> None:
    x, y = _logits()

    def no_upstream(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, 1) - F.one_hot(y, x.shape[1])

    def forward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(x, y, reduction="none")

    report = check_backward("no g", forward, no_upstream, [x, y])
    assert not report.passed
    assert any("within each row" in h for h in report.hints)


def test_check_backward_transposed_square_and_rectangular() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(3, generator=gen, dtype=torch.float64)

    def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return x @ w.T + b

    def wrong_dw(g: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
        return g @ w, x.T @ g, g.sum(0)

    square = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    report = check_backward("square", linear, wrong_dw, {"x": x, "W": square, "b": b})
    by_name = {g.name: g for g in report.gradients}
    assert by_name["d/d x"].passed and by_name["d/d b"].passed
    assert not by_name["d/d W"].passed
    assert any("transposed" in h for h in by_name["d/d W"].hints)

    wide = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    report = check_backward("rect", linear, wrong_dw, {"x": x, "W": wide, "b": b[:2]})
    dw = {g.name: g for g in report.gradients}["d/d W"]
    assert dw.shape == (3, 2) and dw.reference_shape == (2, 3)
    assert dw.vs_autograd is None and not dw.passed
    assert any("transposed" in h for h in dw.hints)
    assert "ours (3, 2), reference (2, 3)" in str(report)


def test_check_backward_nan_from_missing_max_shift() -> None:
    x, y = _logits()

    def no_shift(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = x.exp()
        return g * (e / e.sum(1, keepdim=True) - F.one_hot(y, x.shape[1])) / x.shape[0]

    assert check_backward("small logits", F.cross_entropy, no_shift, [x, y]).passed
    report = check_backward("large logits", F.cross_entropy, no_shift, [x + 1000, y])
    assert not report.passed
    assert any("NaN" in h and "overflow" in h for h in report.hints)
    assert math.isinf(report.gradients[0].max_rel_diff)


def test_check_backward_zero_rows_and_all_zero() -> None:
    x, y = _logits()

    def drops_row(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grad = _ce_backward(g, x, y)
        grad[2] = 0
        return grad

    report = check_backward("zero row", F.cross_entropy, drops_row, [x, y])
    assert any("rows [2]" in h for h in report.hints)
    zeros = check_backward(
        "zeros", F.cross_entropy, lambda g, x, y: torch.zeros_like(x), [x, y]
    )
    assert any("zero everywhere" in h for h in zeros.hints)


def test_check_backward_sum_hint_for_wrong_axis() -> None:
    x, y = _logits(n=6, c=4)

    def wrong_axis(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = (x - x.amax(1, keepdim=True)).exp()
        return g * (e / e.sum(0, keepdim=True) - F.one_hot(y, x.shape[1])) / x.shape[0]

    report = check_backward("axis", F.cross_entropy, wrong_axis, [x, y])
    assert not report.passed
    assert any("sums to zero along dim 1" in h for h in report.hints)


def test_check_backward_reports_an_exception_from_backward() -> None:
    x, y = _logits(n=6, c=4)

    def lost_keepdim(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = x.exp()
        return g * (e / e.sum(1) - F.one_hot(y, x.shape[1])) / x.shape[0]

    report = check_backward("keepdim", F.cross_entropy, lost_keepdim, [x, y])
    assert not report.passed and report.gradients == ()
    assert report.error is not None and report.error.startswith("RuntimeError")
    assert any("keepdim" in h for h in report.hints)
    assert "the backward raised RuntimeError" in str(report)


def test_check_backward_return_layouts_and_wrt() -> None:
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(3, generator=gen, dtype=torch.float64)
    b = torch.randn(3, generator=gen, dtype=torch.float64)

    def product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b

    full = check_backward("full", product, lambda g, a, b: (g * b, g * a), [a, b])
    assert full.passed and len(full.gradients) == 2
    only_b = check_backward("b", product, lambda g, a, b: (None, g * a), [a, b], wrt=[1])
    assert only_b.passed and only_b.gradients[0].name == "d/d input 1"
    single = check_backward(
        "named", product, lambda g, a, b: g * a, {"a": a, "b": b}, wrt=["b"]
    )
    assert single.passed and single.gradients[0].name == "d/d b"
    wrong_count = check_backward("count", product, lambda g, a, b: g * b, [a, b])
    assert not wrong_count.passed and "one tensor but 2 inputs" in str(wrong_count)


def test_check_backward_uses_given_grad_output_and_skips_numerical() -> None:
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    ones = torch.ones(2, dtype=torch.float64)
    # ignoring grad_output is invisible when the upstream gradient is all ones
    report = check_backward(
        "square", lambda t: t**2, lambda g, t: 2 * t, [x], grad_output=ones, numerical=False
    )
    assert report.passed and report.gradients[0].vs_numerical is None
    # and caught with the default random upstream gradient
    assert not check_backward("square", lambda t: t**2, lambda g, t: 2 * t, [x]).passed


def test_check_backward_flags_forward_that_disagrees_with_finite_differences() -> None:
    x = torch.tensor([0.0, 1.0], dtype=torch.float64)
    # a jump at 0.5 inside the finite-difference stencil: autograd sees slope 0 at x=0
    report = check_backward(
        "step", lambda t: (t > 0.5).to(t.dtype) * t, lambda g, t: g * (t > 0.5).to(t.dtype),
        [x], h=0.6,
    )
    assert not report.passed
    assert any("finite differences" in h for h in report.hints)


def test_check_backward_rejects_inputs_without_floating_tensor() -> None:
    with pytest.raises(ValueError, match="no floating-point tensor"):
        check_backward("ints", lambda t: t, lambda g, t: g, [torch.arange(3)])
    with pytest.raises(ValueError, match="not a floating-point tensor"):
        check_backward(
            "wrt", lambda a, t: a, lambda g, a, t: g, [torch.zeros(2), torch.arange(2)], wrt=[1]
        )


def test_gradient_check_keeps_tensors_and_shows_worst_entry_only_on_failure() -> None:
    x, y = _logits()
    good = check_backward("ce", F.cross_entropy, _ce_backward, [x, y]).gradients[0]
    assert good.ours is not None and good.reference is not None
    torch.testing.assert_close(good.ours, good.reference)
    assert "worst entry" not in str(good)

    def doubled(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 2 * _ce_backward(g, x, y)

    bad = check_backward("x2", F.cross_entropy, doubled, [x, y]).gradients[0]
    assert "worst entry" in str(bad)
    index, ours, ref = bad.worst
    assert ours == pytest.approx(2 * ref)
    assert abs(ref) == pytest.approx(float(bad.reference.abs().max()))
    assert float(bad.reference[index]) == ref
    assert bad.max_rel_diff == pytest.approx(1.0)


def test_check_backward_accepts_a_single_tensor() -> None:
    x = torch.tensor([0.1, -0.4, 2.0], dtype=torch.float64)
    report = check_backward("sin", lambda t: t.sin().sum(), lambda g, t: g * t.cos(), x)
    assert report.passed and report.gradients[0].name == "d/d input"
