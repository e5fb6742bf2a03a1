"""byhand.kernels: the Triton cross-entropy kernel against F.cross_entropy and byhand.

Without CUDA these run in Triton's interpreter on CPU tensors (tests/conftest.py sets
TRITON_INTERPRET=1 before anything imports triton), so the shapes are small. With CUDA the
CPU tests skip and the tests named ``cuda`` run the compiled kernel.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import byhand

pytest.importorskip("triton")

from byhand import kernels
from byhand.errors import ArgumentTypeError, ArgumentValueError, UnsupportedDTypeError
from byhand.kernels import triton_cross_entropy as tce

ROOT = Path(__file__).resolve().parents[1]
interpreted = pytest.mark.skipif(not tce.INTERPRETED,
                                 reason="Triton's interpreter is off (TRITON_INTERPRET=1 unset at import)")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# (rtol, atol) against PyTorch computing in the same dtype
TOL = {torch.float32: (1e-5, 1e-6), torch.bfloat16: (2e-2, 1e-2), torch.float16: (2e-3, 1e-3)}


def _problem(n=6, c=37, dtype=torch.float32, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(n, c, generator=gen)).to(dtype).to(device)
    y = torch.randint(0, c, (n,), generator=gen)
    y[1] = -100                                    # an ignored row
    weight = (torch.rand(c, generator=gen) + 0.5).to(dtype).to(device)
    return x, y.to(device), weight


def _options(weight):
    return {
        "mean": {},
        "sum": {"reduction": "sum"},
        "none": {"reduction": "none"},
        "weight": {"weight": weight},
        "smoothing": {"label_smoothing": 0.1},
        "all, sum": {"weight": weight, "label_smoothing": 0.25, "reduction": "sum"},
        "all, none": {"weight": weight, "label_smoothing": 0.3, "reduction": "none"},
        "ignore_index=3": {"weight": weight, "ignore_index": 3},
    }


def _value_and_grad(fn, x, y, upstream=None, **kwargs):
    leaf = x.detach().clone().requires_grad_(True)
    loss = fn(leaf, y, **kwargs)
    g = torch.ones_like(loss) if upstream is None else upstream
    (grad,) = torch.autograd.grad(loss, leaf, g)
    return loss.detach(), grad


def _assert_close(ours, ref, dtype):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=atol, equal_nan=True)


@interpreted
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("option", list(_options(None)))
def test_values_and_gradients_match_pytorch_and_byhand(option, dtype):
    x, y, weight = _problem(dtype=dtype)
    kwargs = _options(weight)[option]
    if "ignore_index" in kwargs:                    # the ignored row carries that index instead
        y = torch.where(y == -100, kwargs["ignore_index"], y)
    upstream = None
    if kwargs.get("reduction") == "none":          # a per-row upstream gradient G_n
        upstream = torch.linspace(-1, 2, len(y)).to(dtype)
    ours = _value_and_grad(kernels.cross_entropy, x, y, upstream, **kwargs)
    torch_ref = _value_and_grad(F.cross_entropy, x, y, upstream, **kwargs)
    for got, ref in zip(ours, torch_ref, strict=True):
        assert got.dtype == dtype
        _assert_close(got, ref, dtype)
    # byhand computes in float32 internally too and rounds once, like the kernel
    byhand_ref = _value_and_grad(byhand.cross_entropy, x, y, upstream, **kwargs)
    for got, ref in zip(ours, byhand_ref, strict=True):
        _assert_close(got, ref, dtype)


@interpreted
@pytest.mark.parametrize("c, block", [(37, 16), (16, 16), (17, 16), (1100, None), (5, 16)])
def test_blocks_that_do_not_divide_the_classes(c, block):
    """Partial last blocks, one block exactly, and (1100) two default interpreter blocks."""
    x, y, weight = _problem(n=4, c=c, seed=c)
    kwargs = {"weight": weight, "label_smoothing": 0.2}
    loss, grad = kernels.cross_entropy_forward_backward(x, y, **kwargs, block_size=block)
    ref_loss, ref_grad = _value_and_grad(F.cross_entropy, x, y, **kwargs)
    _assert_close(loss, ref_loss, torch.float32)
    _assert_close(grad, ref_grad, torch.float32)
    pkg_loss, pkg_grad = byhand.cross_entropy_forward_backward(x, y, **kwargs)
    _assert_close(loss, pkg_loss, torch.float32)
    _assert_close(grad, pkg_grad, torch.float32)


@interpreted
def test_the_trace_is_the_online_logsumexp():
    x, y, _ = _problem(n=3, c=37)
    trace = torch.empty(3, 3, 2)
    kernels.cross_entropy_forward_backward(x, y, block_size=16, trace=trace)
    for b, hi in enumerate((16, 32, 37)):          # after block b: max and shifted sum of x[:, :hi]
        m = x[:, :hi].amax(1)
        torch.testing.assert_close(trace[:, b, 0], m)
        torch.testing.assert_close(trace[:, b, 1], (x[:, :hi] - m[:, None]).exp().sum(1))
    with pytest.raises(ArgumentValueError, match="trace must be float32 of shape"):
        kernels.cross_entropy_forward_backward(x, y, block_size=16, trace=torch.empty(3, 2, 2))


@interpreted
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_an_all_ignored_batch(reduction, label_smoothing):
    x, _, weight = _problem(n=3, c=7)
    y = torch.full((3,), -100)
    kwargs = {"reduction": reduction, "label_smoothing": label_smoothing, "weight": weight}
    loss, grad = _value_and_grad(kernels.cross_entropy, x, y, **kwargs)
    ref_loss, ref_grad = _value_and_grad(F.cross_entropy, x, y, **kwargs)
    _assert_close(loss, ref_loss, torch.float32)   # mean: 0/0 = nan, as in PyTorch
    assert torch.equal(grad, torch.zeros_like(x)) and torch.equal(ref_grad, grad)


@interpreted
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_infinite_and_huge_logits(dtype, label_smoothing):
    inf = math.inf
    big = 1e4 if dtype == torch.float16 else 1e30   # float16: PyTorch sums the smoothing term in float16
    x = torch.tensor([[-inf, 1.0, 0.0, 2.0],       # -inf elsewhere: finite (inf with smoothing)
                      [-inf, 1.0, 0.0, 2.0],       # -inf at the target: inf
                      [inf, 1.0, 0.0, 2.0],        # +inf: nan, as in PyTorch
                      [big, -big, 0.0, big],       # huge: no overflow
                      [-inf, -inf, -inf, -inf],    # nothing finite: nan
                      [1.0, 2.0, 3.0, 4.0]], dtype=dtype)
    y = torch.tensor([1, 0, 0, 3, 2, 1])
    kwargs = {"label_smoothing": label_smoothing, "reduction": "none"}
    ours = _value_and_grad(kernels.cross_entropy, x, y, **kwargs)
    ref = _value_and_grad(F.cross_entropy, x, y, **kwargs)
    for got, want in zip(ours, ref, strict=True):
        _assert_close(got, want, dtype)
    assert torch.isfinite(ours[0][3]) and torch.isfinite(ours[1][3]).all()


@interpreted
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_inplace_writes_the_gradient_over_the_logits(reduction):
    x, y, weight = _problem()
    kwargs = {"weight": weight, "reduction": reduction, "label_smoothing": 0.1}
    loss, grad = kernels.cross_entropy_forward_backward(x, y, **kwargs)
    buffer = x.clone()
    loss_in, grad_in = kernels.cross_entropy_forward_backward(buffer, y, **kwargs, inplace=True)
    assert grad_in.data_ptr() == buffer.data_ptr() and torch.equal(grad_in, grad)
    assert torch.equal(loss_in, loss)
    copy = x.clone()
    kernels.cross_entropy_forward_backward(copy, y, **kwargs)
    assert torch.equal(copy, x), "inplace=False leaves the logits alone"

    # Through autograd: logits produced by an operation, overwritten, gradient still right.
    a = torch.randn(6, 5, requires_grad=True)
    w = torch.randn(37, 5, requires_grad=True)
    upstream = torch.linspace(0.5, 2, 6) if reduction == "none" else torch.tensor(3.0)
    grads = []
    for fn, extra in ((F.cross_entropy, {}), (kernels.cross_entropy, {"inplace": True}),
                      (kernels.cross_entropy, {"inplace": False})):
        logits = a @ w.T
        out = fn(logits, y, **kwargs, **extra)
        grads.append(torch.autograd.grad(out, (a, w), upstream))
    for got in grads[1:]:
        for g, ref in zip(got, grads[0], strict=True):
            torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-5)


@interpreted
def test_inplace_refuses_what_it_would_break():
    x, y, _ = _problem()
    leaf = x.clone().requires_grad_(True)
    with pytest.raises(ArgumentValueError, match="leaf tensor that requires grad"):
        kernels.cross_entropy(leaf, y, inplace=True)
    # A node that saved the logits (tanh saves its output) sees them modified and refuses.
    saved = torch.tanh(leaf)
    loss = kernels.cross_entropy(saved, y, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    # The stored gradient is multiplied in place, so a second backward is refused.
    logits = leaf * 1.0
    loss = kernels.cross_entropy(logits, y, inplace=True)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="can run only once"):
        loss.backward()
    x_nc = x.t().contiguous().t()
    with pytest.raises(ArgumentValueError, match="contiguous"):
        kernels.cross_entropy_forward_backward(x_nc, y, inplace=True)
    loss, grad = kernels.cross_entropy_forward_backward(x_nc, y)   # a copy is fine
    torch.testing.assert_close(grad, kernels.cross_entropy_forward_backward(x, y)[1])


@interpreted
def test_unbatched_input():
    x, y, weight = _problem(n=2, c=9)
    for reduction in ("mean", "none"):
        ours = _value_and_grad(kernels.cross_entropy, x[0], y[0], weight=weight, reduction=reduction)
        ref = _value_and_grad(F.cross_entropy, x[0], y[0], weight=weight, reduction=reduction)
        for got, want in zip(ours, ref, strict=True):
            assert got.shape == want.shape
            _assert_close(got, want, torch.float32)


@interpreted
def test_an_empty_batch():
    x, y = torch.empty(0, 5), torch.empty(0, dtype=torch.int64)
    for reduction in ("mean", "sum", "none"):
        _assert_close(kernels.cross_entropy(x, y, reduction=reduction),
                      F.cross_entropy(x, y, reduction=reduction), torch.float32)


@interpreted
def test_opcheck_on_the_registered_op():
    x, y, weight = _problem(n=4, c=7)
    for args in ((x.requires_grad_(True), y, None, -100, "mean", 0.0),
                 (x, y, weight, 2, "none", 0.1), (x, y, weight, -100, "sum", 0.0)):
        torch.library.opcheck(torch.ops.byhand.cross_entropy.default, args,
                              test_utils=("test_schema", "test_autograd_registration",
                                          "test_faketensor"))
    torch.library.opcheck(torch.ops.byhand.cross_entropy_.default, (x.detach().clone(), y, weight,
                          -100, "mean", 0.1), test_utils=("test_schema", "test_faketensor"))


@interpreted
def test_torch_compile_sees_one_op():
    x, y, weight = _problem(n=4, c=7)
    counts = []

    def backend(gm, example_inputs):
        counts.append([n.target for n in gm.graph.nodes if n.op == "call_function"])
        return gm

    def step(logits):
        return kernels.cross_entropy(logits, y, weight=weight, label_smoothing=0.1, inplace=True)

    compiled = torch.compile(step, backend=backend, fullgraph=True)
    leaf = x.clone().requires_grad_(True)
    loss = compiled(leaf * 1.0)
    (grad,) = torch.autograd.grad(loss, leaf)
    ref = _value_and_grad(F.cross_entropy, x, y, weight=weight, label_smoothing=0.1)
    _assert_close(loss.detach(), ref[0], torch.float32)
    _assert_close(grad, ref[1], torch.float32)
    ops = [t for t in counts[0] if "byhand" in str(t)]
    assert len(ops) == 1, counts[0]


@interpreted
def test_option_errors():
    x, y, weight = _problem(n=3, c=5)
    cases = [
        (ValueError, "reduction must be", {"reduction": "avg"}),  # PyTorch's type
        (ArgumentValueError, "label_smoothing must be", {"label_smoothing": 1.5}),
        (ArgumentValueError, r"weight must have shape \(5,\)", {"weight": torch.ones(4)}),
        (ArgumentTypeError, "weight must have the input's dtype", {"weight": weight.double()}),
    ]
    for error, message, kwargs in cases:
        with pytest.raises(error, match=message):
            kernels.cross_entropy(x, y, **kwargs)
    with pytest.raises(UnsupportedDTypeError, match="float64"):
        kernels.cross_entropy(x.double(), y)
    with pytest.raises(ArgumentTypeError, match="class-index targets only"):
        kernels.cross_entropy(x, x.softmax(1))
    with pytest.raises(ArgumentValueError, match="K-dimensional"):
        kernels.cross_entropy(x[:, :, None], y[:, None])
    with pytest.raises(IndexError, match=r"class indices in \[0, 4\] or ignore_index=-100; got 5"):
        kernels.cross_entropy(x, torch.tensor([0, 5, 1]))
    with pytest.raises(ArgumentValueError, match="power of two"):
        kernels.cross_entropy_forward_backward(x, y, block_size=24)
    with pytest.raises(ArgumentValueError, match="input only"):
        kernels.cross_entropy(x, y, weight=torch.ones(5, requires_grad=True))


def _run_python(code, **env):
    environ = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    environ.update(env, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=120)


def test_importing_byhand_imports_no_triton_and_errors_name_what_is_missing():
    code = """
import sys, torch
import byhand, byhand.kernels
assert sys.modules.get("triton") is None, "import byhand imported triton"
x, y = torch.zeros(2, 3), torch.tensor([0, 1])
try:
    byhand.kernels.cross_entropy(x, y)
except byhand.kernels.KernelUnavailableError as e:
    print("ERROR:", e)
import os; os.environ["TRITON_INTERPRET"] = "1"
try:
    byhand.kernels.cross_entropy(x, y)
except byhand.kernels.KernelUnavailableError as e:
    print("LATE:", e)
"""
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert "TRITON_INTERPRET=1 is not set" in result.stdout
    assert "was set after Triton was imported" in result.stdout
    missing = _run_python("import sys; sys.modules['triton'] = None\n" + code.split("import os")[0])
    assert missing.returncode == 0, missing.stderr
    assert "needs Triton, which is not installed: pip install 'byhand[triton]'" in missing.stdout


@cuda
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
def test_cuda_kernel_matches_pytorch(dtype):
    if tce.INTERPRETED:
        pytest.skip("the interpreter is on; this test is for the compiled kernel")
    x, y, weight = _problem(n=64, c=50_257, dtype=dtype, device="cuda")
    for kwargs in _options(weight).values():
        if "ignore_index" in kwargs:
            y = torch.where(y == -100, kwargs["ignore_index"], y)
        upstream = torch.ones(64, device="cuda", dtype=dtype) if kwargs.get("reduction") == "none" else None
        ours = _value_and_grad(kernels.cross_entropy, x, y, upstream, **kwargs)
        ref = _value_and_grad(F.cross_entropy, x, y, upstream, **kwargs)
        for got, want in zip(ours, ref, strict=True):
            _assert_close(got, want, dtype)
