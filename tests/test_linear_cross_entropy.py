"""byhand.linear_cross_entropy against F.linear_cross_entropy and F.linear + F.cross_entropy.

Forward values and the gradients of input, linear_weight and linear_bias are compared
for random shapes and every option, in float32 and float64, with chunk sizes that do
not divide N or V; gradcheck runs in float64; the memory claim (no N x V tensor) is
measured with the CPU allocator's events; bad input gets errors naming the argument.
"""

from __future__ import annotations

import itertools
import math
import runpy
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import byhand
from byhand.linear_cross_entropy import default_chunk_size
from byhand.memory import allocation_timeline, peak_bytes

TOL = {torch.float32: {"rtol": 2e-5, "atol": 2e-6}, torch.float64: {"rtol": 1e-10, "atol": 1e-12}}

OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"weight": True},
    {"ignore_index": 2},
    {"label_smoothing": 0.15},
    {"weight": True, "ignore_index": 1, "label_smoothing": 0.3, "reduction": "sum"},
    {"weight": True, "label_smoothing": 0.1, "reduction": "none"},
    {"prob": True},
    {"prob": True, "weight": True, "label_smoothing": 0.2},
    {"prob": True, "reduction": "none"},
]
CHUNKS = [{}, {"chunk_size": 3}, {"chunk_size": 4, "vocab_chunk_size": 5},
          {"chunk_size": 1, "vocab_chunk_size": 1}]


def _problem(seed: int, dtype: torch.dtype, opts: dict, bias: bool = True):
    """Random (N, H, V), tensors and keyword arguments for one call."""
    gen = torch.Generator().manual_seed(seed)
    n, h, v = (int(torch.randint(lo, hi, (1,), generator=gen)) for lo, hi in
               ((5, 14), (2, 9), (3, 17)))
    a = torch.randn(n, h, generator=gen, dtype=dtype)
    w = torch.randn(v, h, generator=gen, dtype=dtype)
    b = torch.randn(v, generator=gen, dtype=dtype) if bias else None
    kwargs = {k: opts[k] for k in ("reduction", "label_smoothing") if k in opts}
    if opts.get("weight"):
        kwargs["weight"] = torch.rand(v, generator=gen, dtype=dtype) + 0.1
    if opts.get("prob"):
        target = torch.rand(n, v, generator=gen, dtype=dtype).softmax(1)
    else:
        target = torch.randint(0, v, (n,), generator=gen)
        if "ignore_index" in opts:
            kwargs["ignore_index"] = opts["ignore_index"]
            target[::3] = opts["ignore_index"]
        else:
            target[1] = -100
    return a, w, b, target, kwargs


def _grads(fn, a, w, b, target, kwargs, grad_output=None):
    leaves = [t.clone().requires_grad_(True) for t in (a, w) + ((b,) if b is not None else ())]
    loss = fn(leaves[0], leaves[1], target, linear_bias=leaves[2] if b is not None else None,
              **kwargs)
    go = torch.ones_like(loss) if grad_output is None else grad_output
    return loss.detach(), torch.autograd.grad(loss, leaves, go)


def _naive(input, linear_weight, target, *, linear_bias=None, ignore_index=None, **kwargs):
    if ignore_index is not None:
        kwargs["ignore_index"] = ignore_index
    return F.cross_entropy(F.linear(input, linear_weight, linear_bias), target, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("chunks", CHUNKS, ids=lambda c: "-".join(map(str, c.values())) or "default")
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(map(str, o)) or "plain")
def test_matches_pytorch_and_the_naive_composition(opts, chunks, dtype) -> None:
    seed = hash((str(opts), str(chunks))) % 2**31
    a, w, b, target, kwargs = _problem(seed, dtype, opts)
    ref_loss, ref_grads = _grads(F.linear_cross_entropy, a, w, b, target, kwargs)
    go = torch.randn(ref_loss.shape, dtype=dtype) if ref_loss.dim() else torch.tensor(
        0.7, dtype=dtype)
    ref_loss, ref_grads = _grads(F.linear_cross_entropy, a, w, b, target, kwargs, go)
    naive_loss, naive_grads = _grads(_naive, a, w, b, target, kwargs, go)
    loss, grads = _grads(byhand.linear_cross_entropy, a, w, b, target, {**kwargs, **chunks}, go)
    torch.testing.assert_close(loss, ref_loss, **TOL[dtype])
    torch.testing.assert_close(loss, naive_loss, **TOL[dtype])
    for name, ours, ref, naive in zip(("input", "linear_weight", "linear_bias"), grads,
                                      ref_grads, naive_grads, strict=True):
        torch.testing.assert_close(ours, ref, **TOL[dtype], msg=lambda m, n=name: f"{n}: {m}")
        torch.testing.assert_close(ours, naive, **TOL[dtype], msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("opts", OPTIONS[:3] + OPTIONS[6:8] + OPTIONS[9:],
                         ids=lambda o: "-".join(map(str, o)) or "plain")
def test_pure_backward_and_forward_backward_equal_autograd(opts) -> None:
    a, w, b, target, kwargs = _problem(7, torch.float64, opts)
    kwargs = {**kwargs, "chunk_size": 4, "vocab_chunk_size": 6}
    loss, grads = _grads(byhand.linear_cross_entropy, a, w, b, target, kwargs)
    pure = byhand.linear_cross_entropy_backward(torch.ones_like(loss), a, w, target,
                                                linear_bias=b, **kwargs)
    for ours, ref in zip(pure, grads, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    if loss.dim() == 0:
        fb_loss, fb_grads = byhand.linear_cross_entropy_forward_backward(
            a, w, target, linear_bias=b, **kwargs)
        torch.testing.assert_close(fb_loss, loss, rtol=0, atol=0)
        for ours, ref in zip(fb_grads, grads, strict=True):
            torch.testing.assert_close(ours, ref, rtol=0, atol=0)


@pytest.mark.parametrize("opts", [{}, {"reduction": "none", "weight": True, "label_smoothing": 0.2},
                                  {"reduction": "sum", "ignore_index": 0},
                                  {"prob": True, "label_smoothing": 0.1}],
                         ids=["mean", "none-weight-smooth", "sum-ignore", "prob-smooth"])
@pytest.mark.parametrize("chunks", [{"chunk_size": 3}, {"chunk_size": 2, "vocab_chunk_size": 3}],
                         ids=["rows", "rows-and-vocab"])
def test_gradcheck_float64(opts, chunks) -> None:
    a, w, b, target, kwargs = _problem(3, torch.float64, opts)
    leaves = tuple(t.clone().requires_grad_(True) for t in (a, w, b))

    def fn(x, lw, lb):
        return byhand.linear_cross_entropy(x, lw, target, linear_bias=lb, **kwargs, **chunks)

    assert torch.autograd.gradcheck(fn, leaves)


def test_an_all_ignored_chunk_gets_zero_rows_and_the_right_mean() -> None:
    gen = torch.Generator().manual_seed(1)
    a, w = torch.randn(10, 4, generator=gen), torch.randn(9, 4, generator=gen)
    target = torch.randint(0, 9, (10,), generator=gen)
    target[:4] = -100  # the whole first chunk of 4 rows
    loss, grads = _grads(byhand.linear_cross_entropy, a, w, None, target, {"chunk_size": 4})
    ref_loss, ref_grads = _grads(F.linear_cross_entropy, a, w, None, target, {})
    torch.testing.assert_close(loss, ref_loss)
    assert torch.equal(grads[0][:4], torch.zeros(4, 4))
    for ours, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_target_ignored_behaves_like_pytorch(reduction) -> None:
    a, w = torch.randn(6, 3), torch.randn(5, 3)
    target = torch.full((6,), -100)
    kwargs = {"reduction": reduction}
    loss, grads = _grads(byhand.linear_cross_entropy, a, w, None, target, {**kwargs, "chunk_size": 4})
    ref_loss, ref_grads = _grads(F.linear_cross_entropy, a, w, None, target, kwargs)
    torch.testing.assert_close(loss, ref_loss, equal_nan=True)
    for ours, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(ours, ref, equal_nan=True)


def test_unbatched_input_and_no_bias() -> None:
    gen = torch.Generator().manual_seed(2)
    a, w = torch.randn(5, generator=gen, dtype=torch.float64), torch.randn(
        7, 5, generator=gen, dtype=torch.float64)
    for target, extra in ((torch.tensor(3), {}), (torch.tensor(3), {"reduction": "none"}),
                          (torch.rand(7, generator=gen, dtype=torch.float64), {})):
        loss, grads = _grads(byhand.linear_cross_entropy, a, w, None, target,
                             {**extra, "vocab_chunk_size": 3})
        ref_loss, ref_grads = _grads(F.linear_cross_entropy, a, w, None, target, extra)
        assert loss.shape == ref_loss.shape == ()
        torch.testing.assert_close(loss, ref_loss)
        for ours, ref in zip(grads, ref_grads, strict=True):
            assert ours.shape == ref.shape
            torch.testing.assert_close(ours, ref)


def test_only_the_gradients_asked_for_are_computed() -> None:
    a, w, b, target, _ = _problem(4, torch.float64, {})
    w_leaf = w.clone().requires_grad_(True)
    loss = byhand.linear_cross_entropy(a, w_leaf, target, linear_bias=b, chunk_size=3)
    (gw,) = torch.autograd.grad(loss, [w_leaf])
    ref = torch.autograd.grad(F.linear_cross_entropy(a, w_leaf, target, linear_bias=b), [w_leaf])[0]
    torch.testing.assert_close(gw, ref)
    none = byhand.linear_cross_entropy_backward(torch.tensor(1.0, dtype=torch.float64), a, w,
                                                target, needs=(False, True, False))
    assert none[0] is None and none[2] is None


def test_a_second_backward_of_the_same_graph_gives_the_same_gradients() -> None:
    a, w, b, target, _ = _problem(5, torch.float64, {})
    leaves = [t.clone().requires_grad_(True) for t in (a, w, b)]
    loss = byhand.linear_cross_entropy(leaves[0], leaves[1], target, linear_bias=leaves[2])
    first = torch.autograd.grad(loss, leaves, retain_graph=True)
    second = torch.autograd.grad(loss, leaves)
    for x, y in zip(first, second, strict=True):
        assert torch.equal(x, y)


def test_double_backward_is_refused_not_silently_wrong() -> None:
    a, w, _, target, _ = _problem(6, torch.float64, {})
    a = a.requires_grad_(True)
    loss = byhand.linear_cross_entropy(a, w, target)
    (g,) = torch.autograd.grad(loss, [a], create_graph=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        g.sum().backward()
    upstream = torch.ones((), dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(loss, [a], upstream, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_no_tensor_of_n_by_v_numbers_is_ever_allocated() -> None:
    n, h, v, chunk = 1024, 16, 4096, 64
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, h, generator=gen).requires_grad_(True)
    w = torch.randn(v, h, generator=gen).requires_grad_(True)
    target = torch.randint(0, v, (n,), generator=gen)
    logits_bytes = n * v * 4

    def run(fn):
        def call():
            fn().backward()
            return a.grad, w.grad
        a.grad = w.grad = None  # freed outside the measured call
        return call

    naive = peak_bytes(run(lambda: F.cross_entropy(F.linear(a, w), target)))
    ours = peak_bytes(run(lambda: byhand.linear_cross_entropy(a, w, target, chunk_size=chunk)))
    online = peak_bytes(run(lambda: byhand.linear_cross_entropy(
        a, w, target, chunk_size=chunk, vocab_chunk_size=512)))
    assert naive >= 2 * logits_bytes  # the measurement sees the logits and their gradient
    gradients = (n * h + v * h) * 4
    assert ours <= gradients + 3 * chunk * v * 4, (ours, gradients)
    assert ours < logits_bytes / 4
    # the forward's gradients and their scaled copy (the backward works out of place,
    # so that it runs under is_grads_batched), and a handful of (chunk, block)
    # temporaries: logits, target block, products, exponentials
    assert online <= 2 * gradients + 6 * chunk * 512 * 4, (online, gradients)
    assert online < ours


def test_default_chunk_size() -> None:
    assert default_chunk_size(4096, 512) == 256
    assert default_chunk_size(4096, 16) == 32
    assert default_chunk_size(10, 512) == 10


@pytest.mark.parametrize("seed", range(20))
def test_online_logsumexp_equals_logsumexp_for_any_split(seed) -> None:
    gen = torch.Generator().manual_seed(seed)
    width = int(torch.randint(1, 40, (1,), generator=gen))
    x = torch.randn(3, width, generator=gen, dtype=torch.float64) * 30
    if seed % 4 == 0:
        x[0, : width // 2] = -math.inf  # leading -inf entries stay harmless
    for cuts in itertools.islice(itertools.combinations(range(1, width), min(2, width - 1)), 30):
        edges = [0, *cuts, width]
        blocks = [x[:, lo:hi] for lo, hi in itertools.pairwise(edges)]
        torch.testing.assert_close(byhand.online_logsumexp(blocks), torch.logsumexp(x, 1),
                                   rtol=1e-13, atol=1e-13)


def test_online_logsumexp_does_not_overflow_and_handles_all_minus_inf() -> None:
    x = torch.tensor([[1000.0, 1001.0, 999.0, 1002.0], [-math.inf] * 4])
    out = byhand.online_logsumexp([x[:, :1], x[:, 1:3], x[:, 3:]])
    torch.testing.assert_close(out, torch.logsumexp(x, 1))
    with pytest.raises(ValueError, match="blocks"):
        byhand.online_logsumexp([])


# -------------------------------------------------------------------------- bad input

A, W, Y = torch.randn(4, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 4])
BAD = [
    # (name, args, kwargs, error, words)
    ("H mismatch", (A, torch.randn(5, 2), Y), {}, ValueError,
     ["linear_weight", "(V, 3)", "(5, 2)"]),
    ("int32 target", (A, W, Y.int()), {}, TypeError, ["target", "torch.int64", "torch.int32"]),
    ("float index target", (A, W, Y.float()), {}, TypeError, ["target", "torch.float32"]),
    ("target batch", (A, W, Y[:3]), {}, ValueError, ["target batch size", "4", "got 3"]),
    ("3-d input", (A.unsqueeze(0), W, Y), {}, ValueError, ["input", "(N, H)", "(1, 4, 3)"]),
    ("1-d weight", (A, W[0], Y), {}, ValueError, ["linear_weight", "(V, H)", "(3,)"]),
    ("bias shape", (A, W, Y), {"linear_bias": torch.zeros(4)}, ValueError,
     ["linear_bias", "(5,)", "(4,)"]),
    ("weight dtype", (A, W.double(), Y), {}, TypeError,
     ["linear_weight", "torch.float32", "torch.float64"]),
    ("class weight length", (A, W, Y), {"weight": torch.ones(3)}, ValueError,
     ["weight", "(5,)", "(3,)"]),
    ("ignore_index with probabilities", (A, W, torch.rand(4, 5)), {"ignore_index": -100},
     ValueError, ["ignore_index", "probabilit", "got ignore_index=-100"]),
    ("target out of range", (A, W, torch.tensor([0, 1, 2, 9])), {}, IndexError,
     ["target", "[0, 4]", "got 9"]),
    ("label_smoothing", (A, W, Y), {"label_smoothing": 1.5}, ValueError,
     ["label_smoothing", "[0.0, 1.0]", "1.5"]),
    ("reduction", (A, W, Y), {"reduction": "avg"}, ValueError, ["reduction", "'avg'"]),
]
OURS_ONLY = [
    ("chunk_size 0", (A, W, Y), {"chunk_size": 0}, ValueError, ["chunk_size", "positive", "0"]),
    ("vocab_chunk_size float", (A, W, Y), {"vocab_chunk_size": 2.5}, ValueError,
     ["vocab_chunk_size", "2.5"]),
]


@pytest.mark.parametrize(("name", "args", "kwargs", "error", "words"), BAD, ids=[c[0] for c in BAD])
def test_pytorch_rejects_it_too(name, args, kwargs, error, words) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((RuntimeError, ValueError, IndexError, TypeError)):
            F.linear_cross_entropy(*args, **kwargs)


@pytest.mark.parametrize(("name", "args", "kwargs", "error", "words"), BAD + OURS_ONLY,
                         ids=[c[0] for c in BAD + OURS_ONLY])
def test_errors_name_the_argument_expected_and_given(name, args, kwargs, error, words) -> None:
    for fn in (byhand.linear_cross_entropy,
               lambda *a, **k: byhand.linear_cross_entropy_backward(torch.tensor(1.0), *a, **k)):
        with pytest.raises(error) as info:
            fn(*args, **kwargs)
        message = str(info.value)
        assert message.startswith("linear_cross_entropy"), message
        for word in words:
            assert word in message, f"{word!r} not in {message!r}"


def test_target_or_class_weight_that_requires_grad_is_refused() -> None:
    with pytest.raises(ValueError, match="weight"):
        byhand.linear_cross_entropy(A, W, Y, weight=torch.ones(5, requires_grad=True))


def test_forward_backward_wants_a_scalar_loss() -> None:
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        byhand.linear_cross_entropy_forward_backward(A, W, Y, reduction="none")


# ----------------------------------------------------------- measurement and benchmark


def test_peak_bytes_sees_what_a_call_holds_at_once() -> None:
    def two_buffers():
        a = torch.ones(1000)  # 4,000 bytes
        b = torch.ones(2000)  # 8,000 bytes, while a is alive
        del a
        return b

    assert peak_bytes(two_buffers) == 12_000
    times, held = allocation_timeline(two_buffers)
    assert held == [4_000, 12_000, 8_000] and times == sorted(times)


def test_benchmark_case_reports_the_three_contestants_and_their_ratios() -> None:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "linear_cross_entropy.py"
    bench = runpy.run_path(str(path))
    case = bench["run_case"](64, 16, 256, torch.device("cpu"), repeats=1, seed=0)
    assert set(case["median_s"]) == set(case["peak_bytes"]) == {
        "naive", "byhand", "torch_auto", "torch_same"}
    assert case["peak_bytes"]["naive"] >= 2 * case["logits_bytes"]
    assert case["memory_byhand_over_naive"] == (case["peak_bytes"]["byhand"]
                                                / case["peak_bytes"]["naive"])
    assert case["byhand_chunk_size"] == 32 and case["torch_auto_chunk_size"] >= 1
    assert max(case["max_abs_diff_vs_naive"].values()) < 1e-4


# ------------------------------------------------------ sync-free and half precision

META_OPTIONS = [{}, {"reduction": "sum", "label_smoothing": 0.1}, {"reduction": "none"},
                {"weight": True, "ignore_index": 2}, {"prob": True, "weight": True}]


@pytest.mark.parametrize("chunks", [{"chunk_size": 4}, {"chunk_size": 4, "vocab_chunk_size": 4}],
                         ids=["rows", "rows-and-vocab"])
@pytest.mark.parametrize("opts", META_OPTIONS, ids=lambda o: "-".join(map(str, o)) or "plain")
def test_runs_on_meta_tensors_so_nothing_is_read_on_the_host(opts, chunks) -> None:
    """``meta`` tensors have no values: any ``.item()``, ``bool(t)`` or ``.tolist()`` raises."""
    n, h, v = 6, 4, 9
    leaves = [torch.empty(*shape, device="meta", requires_grad=True)
              for shape in ((n, h), (v, h), (v,))]
    kwargs = {k: opts[k] for k in ("reduction", "label_smoothing", "ignore_index") if k in opts}
    if opts.get("weight"):
        kwargs["weight"] = torch.empty(v, device="meta")
    target = (torch.empty(n, v, device="meta") if opts.get("prob")
              else torch.empty(n, dtype=torch.int64, device="meta"))
    a, w, b = leaves
    loss = byhand.linear_cross_entropy(a, w, target, linear_bias=b, **kwargs, **chunks)
    ref = F.linear_cross_entropy(a, w, target, linear_bias=b, **kwargs)
    assert (loss.device, loss.shape, loss.dtype) == (ref.device, ref.shape, ref.dtype)
    grads = torch.autograd.grad(loss, leaves, torch.empty_like(loss))
    pure = byhand.linear_cross_entropy_backward(torch.empty_like(ref), a.detach(), w.detach(),
                                                target, linear_bias=b.detach(), **kwargs, **chunks)
    for leaf, grad, other in zip(leaves, grads, pure, strict=True):
        assert grad.device.type == other.device.type == "meta"
        assert grad.shape == other.shape == leaf.shape


HALF = [torch.float16, torch.bfloat16]
HALF_OPTIONS = [{}, {"weight": True, "ignore_index": 1, "label_smoothing": 0.1},
                {"prob": True, "reduction": "sum"}]


def _half_problem(dtype: torch.dtype, opts: dict, seed: int):
    """Half-precision tensors (64 rows, H = 16, V = 300) with logits of a few units."""
    gen = torch.Generator().manual_seed(seed)
    n, h, v = 64, 16, 300
    a = torch.randn(n, h, generator=gen).to(dtype)
    w = (torch.randn(v, h, generator=gen) * 0.5).to(dtype)
    b = torch.randn(v, generator=gen).to(dtype)
    kwargs = {k: opts[k] for k in ("reduction", "label_smoothing", "ignore_index") if k in opts}
    if opts.get("weight"):
        kwargs["weight"] = (torch.rand(v, generator=gen) + 0.5).to(dtype)
    if opts.get("prob"):
        target = torch.rand(n, v, generator=gen).softmax(1).to(dtype)
    else:
        target = torch.randint(0, v, (n,), generator=gen)
        target[::5] = opts.get("ignore_index", -100)
    return a, w, b, target, kwargs


@pytest.mark.parametrize("chunks", [{}, {"chunk_size": 24, "vocab_chunk_size": 64}],
                         ids=["default", "rows-and-vocab"])
@pytest.mark.parametrize("opts", HALF_OPTIONS, ids=lambda o: "-".join(map(str, o)) or "plain")
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_precision_error_is_no_worse_than_pytorchs(dtype, opts, chunks) -> None:
    """Computed in float32 and rounded once: against float64 on the same (half) numbers,
    the loss and every gradient are at least as close as PyTorch's own half-precision call."""
    a, w, b, target, kwargs = _half_problem(dtype, opts, seed=len(str(opts)))
    wide = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    t64 = target.double() if target.is_floating_point() else target
    ref_loss, ref_grads = _grads(F.linear_cross_entropy, a.double(), w.double(), b.double(),
                                 t64, wide)
    theirs_loss, theirs_grads = _grads(F.linear_cross_entropy, a, w, b, target, kwargs)
    loss, grads = _grads(byhand.linear_cross_entropy, a, w, b, target, {**kwargs, **chunks})
    assert loss.dtype == theirs_loss.dtype == dtype
    ulp = torch.finfo(dtype).eps
    for name, ours, theirs, ref in zip(("loss", "input", "linear_weight", "linear_bias"),
                                       (loss, *grads), (theirs_loss, *theirs_grads),
                                       (ref_loss, *ref_grads), strict=True):
        assert ours.dtype == dtype, name
        err = float((ours.double() - ref).abs().max())
        err_theirs = float((theirs.double() - ref).abs().max())
        # slack: half a unit in the last place of the largest value, since the mean
        # denominator and G/D are rounded to the input's dtype, as PyTorch rounds them
        slack = 0.5 * ulp * float(ref.abs().max())
        assert err <= err_theirs * 1.05 + slack, (name, err, err_theirs)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA: the sync-debug check needs a CUDA device")
def test_a_call_and_its_backward_never_synchronise_on_cuda() -> None:
    a, w, b, target, kwargs = _problem(8, torch.float32, {"weight": True, "label_smoothing": 0.1})
    leaves = [t.cuda().requires_grad_(True) for t in (a, w, b)]
    target, weight = target.cuda(), kwargs.pop("weight").cuda()

    def step(**chunks):
        loss = byhand.linear_cross_entropy(leaves[0], leaves[1], target, linear_bias=leaves[2],
                                           weight=weight, **kwargs, **chunks)
        return torch.autograd.grad(loss, leaves)

    step(chunk_size=4)  # warm-up: first calls may initialise lazily
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        grads = step(chunk_size=4) + step(chunk_size=4, vocab_chunk_size=5)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert all(g.device.type == "cuda" for g in grads)
