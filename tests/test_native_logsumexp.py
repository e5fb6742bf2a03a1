"""The compiled log-sum-exp pass of half-precision logits: built where a C compiler is,
exact in its maximum and target, float32-accurate in its sum, finite where PyTorch is,
the same on any number of threads, and replaced by PyTorch's operators wherever it
cannot run (no compiler, compile tracing, torch.func, fake tensors)."""

from __future__ import annotations

import importlib
import math
import platform
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import byhand
from byhand import class_blocks, native_logsumexp
from byhand.errors import ArgumentTypeError, ArgumentValueError
from byhand.native_logsumexp import applies, available, row_losses

HALF = [torch.bfloat16, torch.float16]
LINEAR_CROSS_ENTROPY = importlib.import_module("byhand.linear_cross_entropy")
BUILT = available(torch.bfloat16)
needs_loop = pytest.mark.skipif(not BUILT, reason="no C compiler built the loop here; "
                                "test_the_loop_is_built_where_a_compiler_is says why")


def _expected_to_build() -> bool:
    return (sys.platform != "win32" and platform.machine().lower() in ("x86_64", "amd64")
            and shutil.which("cc") is not None)


def test_the_loop_is_built_where_a_compiler_is() -> None:
    assert available(torch.bfloat16) == _expected_to_build()
    assert available(torch.float16) == _expected_to_build()
    assert not available(torch.float32) and not available(torch.float64)


@pytest.mark.skipif(not _expected_to_build(), reason="needs an x86-64 C compiler")
def test_the_c_file_refuses_a_target_without_avx2() -> None:
    """Without AVX2 the exponential would not vectorize, so the build fails on purpose
    (and PyTorch's operators run); with it, the file compiles."""
    source = str(native_logsumexp._SOURCE)
    older = subprocess.run(["cc", "-fsyntax-only", "-march=x86-64", source],
                           capture_output=True, text=True, check=False)
    assert older.returncode != 0 and "built only with AVX2" in older.stderr
    newer = subprocess.run(["cc", "-fsyntax-only", "-march=haswell", "-fopenmp-simd", source],
                           capture_output=True, text=True, check=False)
    assert newer.returncode == 0, newer.stderr


def _logits(rows: int, v: int, dtype: torch.dtype, scale: float = 6.0, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, v, generator=gen) * scale).to(dtype)
    return x, torch.randint(0, v, (rows,), generator=gen)


def _losses(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = torch.full((2, x.shape[0]), -1.0)
    row_losses(x, y, out)
    return out


def _exact(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """lse_n and L_n in float64 from the same half-precision logits."""
    x64 = x.double()
    lse = torch.logsumexp(x64, 1)
    return lse, lse - x64[torch.arange(x.shape[0]), y]


@needs_loop
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("v", [1, 15, 16, 17, 300, 1025, 4008, 32000])
def test_row_losses_against_float64(dtype, v) -> None:
    """lse_n and L_n within the rounding bound of the loop's order of sums at every
    vocabulary size: its lanes add at most 64 terms before a block's total joins the
    row's, so s_n is within about 5e-6 of itself (2.4e-6 is the largest seen here), and
    so are lse_n and L_n in absolute terms (PyTorch's float32 sum, pairwise, stays near
    2e-7)."""
    x, y = _logits(33, v, dtype, seed=v)
    lse, loss = _losses(x, y).double()
    exact_lse, exact_loss = _exact(x, y)
    # 64 additions in a lane, one per block, 16 lanes joined, each within 2^-24 of s_n;
    # 2.5e-7 for the exponential (its worst below 0); then log and the last additions
    bound = (64 + math.ceil(v / 1024) + 16) * 2.0**-24 + 2.5e-7
    torch.testing.assert_close(lse, exact_lse, rtol=2**-23, atol=bound)
    torch.testing.assert_close(loss, exact_loss, rtol=2**-23, atol=bound)


@needs_loop
def test_a_loss_near_zero_keeps_its_digits() -> None:
    """L_n = log s_n - (x_{n y_n} - m_n), not lse_n - x_{n y_n}: a confident row's loss of
    about 1e-7 comes out as PyTorch's float32 log-softmax gives it, where lse_n = 40,
    rounded to float32, would leave 0."""
    x = torch.tensor([[40.0, 24.0, 20.0]], dtype=torch.bfloat16)
    lse, loss = _losses(x, torch.tensor([0]))
    theirs = -torch.log_softmax(x.float(), 1)[0, 0]
    assert 0 < theirs.item() < 2e-7
    assert loss.item() == theirs.item()
    assert (lse - 40.0).item() == 0.0


@needs_loop
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_row_losses_at_the_edges(dtype) -> None:
    """-inf entries (a masked vocabulary) add nothing; a row of -inf but one has lse its
    value and loss 0; a row of -inf only, a +inf maximum or a NaN gives NaN, as
    log_softmax does; a target outside the row gives a NaN loss, its lse still right."""
    inf, nan = math.inf, math.nan
    x = torch.tensor([[0.0, -inf, 1.0, -inf], [-inf, -inf, 2.0, -inf],
                      [-inf, -inf, -inf, -inf], [inf, 0.0, 1.0, 2.0],
                      [0.0, nan, 1.0, 2.0], [-90.0, 0.0, -87.0, -85.0]], dtype=dtype)
    y = torch.tensor([2, 2, 0, 1, 0, 4])
    lse, loss = _losses(x, y)
    assert lse[0].item() == pytest.approx(1 + math.log1p(math.exp(-1)), rel=1e-6)
    assert loss[0].item() == pytest.approx(math.log1p(math.exp(-1)), rel=1e-6)
    assert (lse[1].item(), loss[1].item()) == (2.0, 0.0)
    assert lse[2:5].isnan().all() and loss[2:5].isnan().all()
    assert torch.isnan(torch.log_softmax(x[2:5].double(), 1)).any(1).all()
    assert lse[5].item() == 0.0 and loss[5].isnan()


@needs_loop
def test_row_losses_are_the_same_on_one_and_two_threads_and_any_layout() -> None:
    x, y = _logits(64, 4008, torch.bfloat16)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _losses(x, y)
        torch.set_num_threads(2)
        two = _losses(x, y)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)
    wide = torch.cat([x, x[:, :5]], 1)[:, :4008]  # rows further apart than their length
    assert wide.stride(0) != 4008 and torch.equal(_losses(wide, y), one)
    assert torch.equal(_losses(x.t().contiguous().t(), y), one)  # columns apart: copied
    targets = torch.stack([y, y], 1)[:, 0]  # strided targets
    assert torch.equal(_losses(x, targets), one)


@needs_loop
def test_row_losses_refuses_what_it_cannot_read() -> None:
    x, y = _logits(4, 10, torch.bfloat16)
    with pytest.raises(ArgumentTypeError, match=r"row_losses: x must be 2-D bfloat16 .* got torch.float32"):
        row_losses(x.float(), y, torch.empty(2, 4))
    with pytest.raises(ArgumentValueError, match=r"y must hold 4 int64 .* got torch.int32"):
        row_losses(x, y.int(), torch.empty(2, 4))
    with pytest.raises(ArgumentValueError, match=r"out must be float32 of shape \(2, 4\).*\(4, 2\)"):
        row_losses(x, y, torch.empty(4, 2))


def test_applies_only_where_the_loop_can_read_the_storage() -> None:
    x = torch.zeros(2, 3, dtype=torch.bfloat16)
    assert applies(x) == BUILT
    assert applies(torch.nn.Parameter(x)) == BUILT
    assert not applies(x.float())
    assert not applies(torch.zeros(2, 3, dtype=torch.bfloat16, device="meta"))
    seen = []
    torch.func.vmap(lambda r: seen.append(applies(r)) or r)(x)
    assert seen == [False]
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        assert not applies(torch.zeros(2, 3, dtype=torch.bfloat16))


def _llm_problem(seed: int = 3):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(300, 32, generator=gen)
    w = torch.randn(1001, 32, generator=gen) / 32**0.5 * 3
    b = torch.randn(1001, generator=gen)
    b[-9:] = -math.inf  # a padded vocabulary
    y = torch.randint(0, 992, (300,), generator=gen)
    y[[5, 77]] = -100
    return a, w, b, y


@pytest.mark.parametrize("option", [{}, {"lse_square_scale": 1e-3}, {"reduction": "none"},
                                    {"weight": True}], ids=["plain", "z_loss", "none", "weight"])
def test_evaluation_with_and_without_the_loop(option, monkeypatch) -> None:
    """Under autocast the loss is float32, so the compiled pass and PyTorch's operators can
    be compared to float32's accuracy, with padded classes and ignored rows, and both
    against float64 on the same bfloat16 logits."""
    a, w, b, y = _llm_problem()
    kw = dict(option, linear_bias=b)
    if kw.get("weight"):
        kw["weight"] = torch.rand(1001, generator=torch.Generator().manual_seed(4)) + 0.5
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        compiled = byhand.linear_cross_entropy(a, w, y, **kw)
        monkeypatch.setattr(class_blocks, "applies", lambda x: False)
        operators = byhand.linear_cross_entropy(a, w, y, **kw)
    assert compiled.dtype == operators.dtype == torch.float32
    torch.testing.assert_close(compiled, operators, rtol=2e-6, atol=2e-6)
    logits = F.linear(a.bfloat16(), w.bfloat16(), b.bfloat16()).double()
    exact = F.cross_entropy(logits, y, reduction=kw.get("reduction", "mean"),
                            weight=None if "weight" not in kw else kw["weight"].double())
    if option.get("lse_square_scale"):
        lse = torch.logsumexp(logits[y != -100], 1)
        exact = exact + 1e-3 * lse.square().sum() / (y != -100).sum()
    torch.testing.assert_close(compiled.double(), exact, rtol=1e-5, atol=1e-5)


@needs_loop
def test_row_losses_returns_the_sum_of_the_losses_in_row_order() -> None:
    x, y = _logits(300, 1001, torch.bfloat16)
    out = torch.empty(2, 300)
    returned = row_losses(x, y, out)
    in_order = 0.0
    for loss in out[1].tolist():
        in_order += loss
    assert returned == in_order


@needs_loop
@pytest.mark.parametrize("option", [{}, {"reduction": "sum"}, {"denominator": 7.0},
                                    {"chunk_size": 32}, {"denominator": 0.0}],
                         ids=["mean", "sum", "denominator", "blocks", "zero"])
def test_a_sum_or_mean_is_formed_on_the_host_from_the_loops_sum(option, monkeypatch) -> None:
    """With no row ignored and no class weight, the loop's float64 sum gives the reduced
    loss, and no operator sums the losses again: the same as PyTorch's operators to
    float32's accuracy (under autocast the loss is float32), over one block of rows or
    several. A denominator of 0 takes the operators' division, to infinity."""
    a, w, b, y = _llm_problem()
    y = y.clamp(min=0)  # no ignored row
    summed = []
    monkeypatch.setattr(LINEAR_CROSS_ENTROPY, "total", lambda t: summed.append(t) or t.sum())
    on_the_host = option.get("denominator") != 0.0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        compiled = byhand.linear_cross_entropy(a, w, y, linear_bias=b, **option)
        assert len(summed) == (0 if on_the_host else 1)
        monkeypatch.setattr(class_blocks, "applies", lambda x: False)
        operators = byhand.linear_cross_entropy(a, w, y, linear_bias=b, **option)
    assert len(summed) == (1 if on_the_host else 2)
    assert compiled.dtype == operators.dtype == torch.float32
    torch.testing.assert_close(compiled, operators, rtol=2e-6, atol=0.0)
    if option.get("denominator") == 0.0:
        assert compiled.item() == math.inf


def test_a_failed_build_falls_back_and_leaves_nothing_behind(monkeypatch, tmp_path) -> None:
    """With a compiler that fails, or none, the loop is not built, nothing is left in the
    temporary directory, and evaluation takes PyTorch's operators to the same loss."""
    a, w, b, y = _llm_problem()
    a, w, b = (t.bfloat16() for t in (a, w, b))
    with torch.no_grad():
        before = byhand.linear_cross_entropy(a, w, y, linear_bias=b, reduction="none")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    try:
        for compiler in ("false", "no-such-compiler-anywhere"):
            monkeypatch.setenv("CC", compiler)
            native_logsumexp._library.cache_clear()
            assert not available(torch.bfloat16)
            assert not applies(a)
            with torch.no_grad():
                after = byhand.linear_cross_entropy(a, w, y, linear_bias=b, reduction="none")
            torch.testing.assert_close(after, before, rtol=2**-7, atol=0.0)
            assert list(tmp_path.iterdir()) == []
    finally:
        monkeypatch.undo()
        native_logsumexp._library.cache_clear()
    assert available(torch.bfloat16) == BUILT


def test_evaluation_compiles_fullgraph_around_the_loop() -> None:
    """torch.compile traces PyTorch's operators instead of the C call."""
    a, w, b, y = _llm_problem()
    a, w, b = (t.bfloat16() for t in (a, w, b))

    def loss(a, w, b, y):
        return byhand.linear_cross_entropy(a, w, y, linear_bias=b)

    torch._dynamo.reset()
    with torch.no_grad():
        compiled = torch.compile(loss, fullgraph=True, backend="eager")(a, w, b, y)
        eager = loss(a, w, b, y)
    torch.testing.assert_close(compiled.float(), eager.float(), rtol=2**-7, atol=0.0)
