"""byhand.linear_cross_entropy in the regime language models train in (issue 19) and as
PyTorch's own tests call it (issue 18): half precision, autocast, evaluation, masked
vocabularies, soft cap, z-loss, a global denominator, options=, K-dimensional weights,
compile, batched and forward-mode gradients."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import byhand
from byhand.memory import peak_bytes
from byhand.sweep_problem import default_chunk_size

PATHS = {"whole": {}, "rows": {"chunk_size": 3}, "vocab": {"chunk_size": 3, "vocab_chunk_size": 4}}


def _problem(n=7, h=5, v=11, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, h, generator=gen, dtype=dtype)
    w = torch.randn(v, h, generator=gen, dtype=dtype)
    b = torch.randn(v, generator=gen, dtype=dtype)
    y = torch.randint(0, v, (n,), generator=gen)
    return a, w, b, y


def _both(a, w, y, ours_kw=None, **kw):
    """Loss and gradients of byhand and torch (naive path) for the same call."""
    out = []
    for fn, extra in ((byhand.linear_cross_entropy, ours_kw or {}), (F.linear_cross_entropy, {})):
        leaves = [t.detach().clone().requires_grad_(True) for t in (a, w)]
        bias = kw.get("linear_bias")
        kws = dict(kw)
        if bias is not None:
            kws["linear_bias"] = bias.detach().clone().requires_grad_(True)
            leaves.append(kws["linear_bias"])
        loss = fn(*leaves[:2], y, **kws, **extra)
        grads = torch.autograd.grad(loss.sum(), leaves, allow_unused=True)
        out.append((loss.detach(), grads))
    return out


# ------------------------------------------------------------------- half precision


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("path", list(PATHS))
def test_autocast_matches_pytorch_dtypes_and_values(dtype, path) -> None:
    a, w, b, y = _problem(dtype=torch.float32)
    with torch.autocast("cpu", dtype=dtype):
        (ours, g_ours), (ref, g_ref) = _both(a, w, y, PATHS[path], linear_bias=b)
    assert ours.dtype == ref.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=2e-2, atol=2e-2)
    for mine, theirs in zip(g_ours, g_ref, strict=True):
        assert mine.dtype == theirs.dtype == torch.float32
        torch.testing.assert_close(mine, theirs, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("given", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["weight", "probabilities"])
def test_autocast_casts_the_loss_arguments_as_pytorch(kind, given) -> None:
    """Autocast's float32 policy takes cross_entropy's class weights and probability
    targets to float32 (float64 stays, and a float64 weight is then refused, by PyTorch
    too); a float64 input is not cast and keeps a float64 loss."""
    a, w, b, y = _problem(dtype=torch.float32)
    kw = {"weight": torch.rand(11, generator=torch.Generator().manual_seed(2)).to(given)}
    if kind == "probabilities":
        kw, y = {}, torch.softmax(torch.randn(7, 11, generator=torch.Generator().manual_seed(3)),
                                 1).to(given)
    outcomes = []
    for fn in (byhand.linear_cross_entropy, F.linear_cross_entropy):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            try:
                outcomes.append(fn(a, w, y, linear_bias=b, **kw))
            except RuntimeError as error:
                outcomes.append(error)
    ours, theirs = outcomes
    if isinstance(theirs, RuntimeError):
        assert isinstance(ours, RuntimeError) and "weight must have" in str(ours)
        assert "found Double" in str(theirs)
        return
    assert ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = byhand.linear_cross_entropy(a.double(), w.double(), y.double() if
                                           kind == "probabilities" else y)
        theirs = F.linear_cross_entropy(a.double(), w.double(), y.double() if
                                        kind == "probabilities" else y)
    assert ours.dtype == theirs.dtype == torch.float64
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("path", list(PATHS))
def test_bfloat16_gradients_in_parameter_dtypes_and_as_accurate_as_pytorch(reduction, path) -> None:
    a64, w64, b64, y = _problem(n=64, h=32, v=301, seed=1)
    a, w, b = (t.to(torch.bfloat16) for t in (a64, w64, b64))
    (ours, g_ours), (ref, g_ref) = _both(a, w, y, PATHS[path], linear_bias=b,
                                         reduction=reduction)
    (exact, g_exact), _ = _both(a.double(), w.double(), y, PATHS[path],
                                linear_bias=b.double(), reduction=reduction)
    assert ours.dtype == ref.dtype == torch.bfloat16
    assert [g.dtype for g in g_ours] == [torch.bfloat16] * 3

    def err(x, e):  # root-mean-square error against float64 on the same bf16 numbers
        return float((x.double() - e).square().mean().sqrt())

    assert err(ours, exact) <= 1.05 * err(ref, exact) + 1e-12
    for mine, theirs, e in zip(g_ours, g_ref, g_exact, strict=True):
        assert err(mine, e) <= 1.05 * err(theirs, e) + 1e-9


@pytest.mark.parametrize("ratio", [1, 2, 4, 8])
def test_bfloat16_peak_memory_at_llama_proportions(ratio) -> None:
    h, v = 128, 4008
    n = ratio * h
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, h, generator=gen).bfloat16().requires_grad_(True)
    w = (torch.randn(v, h, generator=gen) / h**0.5).bfloat16().requires_grad_(True)
    y = torch.randint(0, v, (n,), generator=gen)
    options = torch.nn.LinearCrossEntropyOptions()

    def run(fn):
        def call():
            fn().backward()
            return a.grad, w.grad
        a.grad = w.grad = None
        return call

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        naive = peak_bytes(run(lambda: F.cross_entropy(F.linear(a, w), y)))
        chunked = peak_bytes(run(lambda: F.linear_cross_entropy(a, w, y, options=options)))
    a.grad = w.grad = None
    ours = peak_bytes(run(lambda: byhand.linear_cross_entropy(a, w, y)))
    assert ours <= chunked, (ours, chunked)
    if ratio >= 2:
        assert ours <= naive, (ours, naive)
    if ratio == 8:
        assert ours <= naive / 4, (ours, naive)


VOCABULARY_ORDER_OPTIONS = {
    "plain": {}, "bias": {"bias": True}, "weight": {"weight": True},
    "ignore_index": {"ignore_index": 3}, "softcap": {"softcap": 2.0},
    "z_loss": {"lse_square_scale": 0.1}, "denominator": {"denominator": 13.0},
    "together": {"bias": True, "weight": True, "ignore_index": 3, "softcap": 2.0,
                 "lse_square_scale": 0.1},
}


def _vocabulary_order_call(a, w, b, y, opts, reduction, **chunks):
    """Loss and gradients of ``byhand.linear_cross_entropy`` for ``opts`` (leaves cloned)."""
    kw = {k: v for k, v in opts.items() if k not in ("bias", "weight")}
    if opts.get("weight"):
        kw["weight"] = torch.linspace(0.5, 1.5, w.shape[0], dtype=a.dtype)
    if "ignore_index" in opts:
        y = y.clone()
        y[::4] = opts["ignore_index"]
    leaves = [t.detach().clone().requires_grad_(True)
              for t in ((a, w, b) if opts.get("bias") else (a, w))]
    bias = leaves[2] if opts.get("bias") else None
    loss = byhand.linear_cross_entropy(leaves[0], leaves[1], y, linear_bias=bias,
                                       reduction=reduction, **kw, **chunks)
    return loss.detach(), torch.autograd.grad(loss.sum(), leaves)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("option", list(VOCABULARY_ORDER_OPTIONS))
def test_half_precision_vocabulary_order_is_as_accurate_as_row_chunks(option, reduction) -> None:
    """In half precision the default sweep takes the classes in blocks, every row at once,
    and writes each block's weight gradient once; ``chunk_size`` keeps the row chunks and
    their float32 accumulator. Against float64 on the same bfloat16 numbers the two are
    equally accurate (three blocks of 150, 150 and 1 classes here), in every option."""
    a64, w64, b64, y = _problem(n=64, h=32, v=301, seed=2)
    y[:3] = torch.tensor([0, 150, 300])  # a target in each block, and the last class
    a, w, b = (t.to(torch.bfloat16) for t in (a64, w64, b64))
    opts = VOCABULARY_ORDER_OPTIONS[option]
    blocks, grads = _vocabulary_order_call(a, w, b, y, opts, reduction)
    rows, row_grads = _vocabulary_order_call(a, w, b, y, opts, reduction, chunk_size=32)
    exact, exact_grads = _vocabulary_order_call(a.double(), w.double(), b.double(), y, opts,
                                                reduction)
    assert blocks.dtype == torch.bfloat16
    assert [g.dtype for g in grads] == [torch.bfloat16] * len(grads)

    def err(x, e):  # root-mean-square error against float64 on the same bf16 numbers
        return float((x.double() - e).square().mean().sqrt())

    for mine, theirs, e in zip((blocks, *grads), (rows, *row_grads), (exact, *exact_grads),
                               strict=True):
        slack = 2.0**-9 * float(e.abs().square().mean().sqrt())  # a quarter of a bf16 ulp
        assert err(mine, e) <= 1.1 * err(theirs, e) + slack, (err(mine, e), err(theirs, e))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_half_precision_vocabulary_order_at_the_edges(reduction) -> None:
    """A padded vocabulary (a -inf bias on the last 60 classes: all of the second block,
    after one of 240) and a batch whose every target is ignored, in bfloat16 by default,
    against PyTorch in float64 on the same numbers."""
    a64, w64, b64, y = _problem(n=40, h=8, v=300, seed=3)
    b64[240:] = -math.inf
    y = y % 240
    a, w, b = (t.to(torch.bfloat16) for t in (a64, w64, b64))
    (ours, g_ours), _ = _both(a, w, y, linear_bias=b, reduction=reduction)
    (ref, g_ref), _ = _both(a.double(), w.double(), y, linear_bias=b.double(),
                            reduction=reduction)
    torch.testing.assert_close(ours.double(), ref, rtol=2e-2, atol=2e-2)
    for mine, theirs in zip(g_ours, g_ref, strict=True):
        assert torch.isfinite(mine).all()
        atol = 2.0**-7 * float(theirs.abs().max())  # two bf16 units of the largest
        torch.testing.assert_close(mine.double(), theirs, rtol=2e-2, atol=atol)
    ignored = torch.full_like(y, -100)
    (ours, g_ours), (ref, _) = _both(a, w, ignored, linear_bias=b, reduction=reduction)
    torch.testing.assert_close(ours, ref, equal_nan=True)
    assert all((g == 0).all() for g in g_ours)


def test_half_precision_keeps_row_chunks_where_blocks_would_be_thin() -> None:
    """With many rows for few classes (H = 16, V = 300, N = 2000: a chunk's logits would
    make blocks of 4 classes) the default is the chunks of rows, bit for bit, and its
    peak stays within a few chunks' logits."""
    a, w, _, y = _problem(n=2000, h=16, v=300, dtype=torch.float32, seed=4)
    a, w = a.bfloat16().requires_grad_(True), w.bfloat16().requires_grad_(True)
    chunk = default_chunk_size(2000, 16)
    grads = [torch.autograd.grad(byhand.linear_cross_entropy(a, w, y, **kw), (a, w))
             for kw in ({}, {"chunk_size": chunk})]
    for mine, theirs in zip(*grads, strict=True):
        assert torch.equal(mine, theirs)
    a.grad = w.grad = None
    peak = peak_bytes(lambda: byhand.linear_cross_entropy(a, w, y).backward())
    assert peak <= 4 * chunk * 300 * 4 + (2000 + 300) * 16 * 2 * 4, peak


# ------------------------------------------------------------------- evaluation


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "no_leaf"])
def test_evaluation_computes_the_loss_only(mode) -> None:
    n, h, v = 512, 64, 2048
    a, w, _, y = _problem(n, h, v, dtype=torch.float32)
    if mode != "no_leaf":
        a.requires_grad_(True)
        w.requires_grad_(True)
    ctx = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode,
           "no_leaf": torch.enable_grad}[mode]
    with ctx():
        loss = byhand.linear_cross_entropy(a, w, y)
        peak = peak_bytes(lambda: byhand.linear_cross_entropy(a, w, y))
    torch.testing.assert_close(loss, F.linear_cross_entropy(a.detach(), w.detach(), y))
    assert not loss.requires_grad
    chunk = default_chunk_size(n, h)
    # a few chunk-sized buffers; the gradients alone would be (N + V) H numbers
    assert peak <= 4 * chunk * v * 4 + 64 * n, peak
    assert peak < (n + v) * h * 4


EVALUATION_OPTIONS = {
    "plain": {}, "weight": {"weight": True}, "ignore_index": {"ignore_index": 3},
    "softcap": {"softcap": 2.0}, "z_loss": {"lse_square_scale": 0.1, "return_z_loss": True},
    "denominator": {"denominator": 13.0}, "smoothing": {"label_smoothing": 0.1},
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("chunk_size", [None, 4])
@pytest.mark.parametrize("option", list(EVALUATION_OPTIONS))
@pytest.mark.parametrize("ignored", [True, False], ids=["ignored", "every_kept"])
def test_evaluation_gives_the_training_loss(dtype, reduction, chunk_size, option,
                                            ignored) -> None:
    """The loss-only sweep (more rows at once, exponentials in place, a float32 buffer in
    half precision, no mask when no row is ignored) against the forward that also forms
    the gradients: every option, a masked vocabulary, ignored rows or none, chunks that
    do not divide N."""
    a, w, b, y = _problem(n=37, h=5, v=11, dtype=dtype)
    b[9:] = -math.inf
    y = y % 9
    if ignored:
        y[[2, 30]] = -100 if option != "ignore_index" else 3
    kw = dict(EVALUATION_OPTIONS[option], linear_bias=b, reduction=reduction,
              chunk_size=chunk_size)
    if kw.get("weight"):
        kw["weight"] = torch.rand(11, generator=torch.Generator().manual_seed(1)).to(dtype) + 0.5
    with torch.no_grad():
        evaluated = byhand.linear_cross_entropy(a, w, y, **kw)
    leaves = [t.clone().requires_grad_(True) for t in (a, w, b)]
    trained = byhand.linear_cross_entropy(leaves[0], leaves[1], y,
                                          **dict(kw, linear_bias=leaves[2]))
    if not kw.get("return_z_loss"):
        evaluated, trained = (evaluated,), (trained,)
    for mine, theirs in zip(evaluated, trained, strict=True):
        assert mine.dtype == theirs.dtype and not mine.requires_grad
        torch.testing.assert_close(mine, theirs.detach(), equal_nan=True)


EVALUATION_EDGES = ("class_indices", "empty", "unbatched", "uint8", "ignore_index_absent",
                    "ignore_index_present")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("edge", EVALUATION_EDGES)
def test_evaluation_matches_pytorch_at_the_edges(dtype, reduction, edge) -> None:
    """Under no_grad, where validation reads the targets and may skip the mask: an empty
    batch (mean: nan), one unbatched row, uint8 targets, an ignore_index that no target
    holds and one that a target holds. PyTorch's dtype and shape; in float32 its value,
    in bfloat16 the float64 loss of the same bfloat16 logits rounded once (PyTorch's own
    bfloat16 log-softmax can be about 30 units in the last place off: 0.0155 for 0.0137)."""
    a, w, _, y = _problem(n=6, h=4, v=9, dtype=dtype)
    kw = {"reduction": reduction}
    if edge == "empty":
        a, y = a[:0], y[:0]
    elif edge == "unbatched":
        a, y = a[0], y[0]
    elif edge == "uint8":
        y = y.to(torch.uint8)
    elif edge == "ignore_index_absent":
        kw["ignore_index"] = 100
    elif edge == "ignore_index_present":
        kw["ignore_index"] = int(y[1])
    with torch.no_grad():
        ours = byhand.linear_cross_entropy(a, w, y, **kw)
        theirs = F.linear_cross_entropy(a, w, y, **kw)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if dtype == torch.float32:
        torch.testing.assert_close(ours, theirs, equal_nan=True)
        return
    exact = F.cross_entropy((a @ w.T).double(), y.long(), **kw)
    torch.testing.assert_close(ours.double(), exact, rtol=2**-8, atol=1e-6, equal_nan=True)


def test_evaluation_under_vmap_matches_pytorch() -> None:
    """Under torch.func.vmap the targets cannot be read on the host: the masked path runs."""
    a, w, _, y = _problem(n=18, h=4, v=9, dtype=torch.float32)
    a, y = a.reshape(3, 6, 4), y.reshape(3, 6)
    with torch.no_grad():
        ours = torch.func.vmap(lambda a, y: byhand.linear_cross_entropy(a, w, y))(a, y)
    theirs = torch.stack([F.cross_entropy(a[i] @ w.T, y[i]) for i in range(3)])
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_bfloat16_evaluation_is_as_accurate_as_pytorch(reduction) -> None:
    a64, w64, b64, y = _problem(n=300, h=32, v=301, seed=2)
    a, w, b = (t.to(torch.bfloat16) for t in (a64, w64, b64))
    with torch.no_grad():
        ours = byhand.linear_cross_entropy(a, w, y, linear_bias=b, reduction=reduction)
        ref = F.linear_cross_entropy(a, w, y, linear_bias=b, reduction=reduction)
        exact = F.linear_cross_entropy(a.double(), w.double(), y, linear_bias=b.double(),
                                       reduction=reduction)

    def err(x):
        return float((x.double() - exact).square().mean().sqrt())

    assert ours.dtype == torch.bfloat16
    assert err(ours) <= 1.05 * err(ref) + 1e-12


def test_bfloat16_evaluation_holds_no_gradient_buffers() -> None:
    n, h, v = 512, 64, 2048
    a, w, _, y = _problem(n, h, v, dtype=torch.float32)
    a, w = a.bfloat16().requires_grad_(True), w.bfloat16().requires_grad_(True)
    with torch.no_grad():
        peak = peak_bytes(lambda: byhand.linear_cross_entropy(a, w, y))
    # the bytes of twice a chunk's float32 logits in bfloat16 (and, without the compiled
    # loop, a float32 buffer of half a chunk); training holds the bfloat16 gradients and a
    # float32 dW accumulator
    chunk = default_chunk_size(n, h)
    assert peak <= 2.5 * chunk * v * 4 + 64 * n, peak
    assert peak < (n + v) * h * 2 + v * h * 4


def test_forward_mode_under_no_grad_keeps_its_tangent() -> None:
    a, w, b, y = _problem()
    tangent = torch.randn(a.shape, generator=torch.Generator().manual_seed(5), dtype=a.dtype)
    with torch.no_grad():
        ours = torch.func.jvp(lambda x: byhand.linear_cross_entropy(x, w, y, linear_bias=b),
                              (a,), (tangent,))
        ref = torch.func.jvp(lambda x: F.linear_cross_entropy(x, w, y, linear_bias=b),
                             (a,), (tangent,))
        with torch.autograd.forward_ad.dual_level():
            dual = torch.autograd.forward_ad.make_dual(a, tangent)
            out = byhand.linear_cross_entropy(dual, w, y, linear_bias=b)
            dual_tangent = torch.autograd.forward_ad.unpack_dual(out).tangent
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(dual_tangent, ref[1])


# ------------------------------------------------------------------- the edges


@pytest.mark.parametrize("path", [*list(PATHS), "first-block"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_masked_vocabulary_through_a_minus_inf_bias(path, reduction) -> None:
    a, w, b, y = _problem(v=12)
    b = b.clone()
    if path == "first-block":  # the whole first vocabulary block is masked
        b[:4] = -math.inf
        y = y % 8 + 4
        kw = PATHS["vocab"]
    else:
        b[7:] = -math.inf  # a padded vocabulary
        y = y % 7
        kw = PATHS[path]
    (ours, g_ours), (ref, g_ref) = _both(a, w, y, kw, linear_bias=b, reduction=reduction)
    assert torch.isfinite(ref).all()
    torch.testing.assert_close(ours, ref)
    for mine, theirs in zip(g_ours, g_ref, strict=True):
        assert torch.isfinite(mine).all()
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_all_targets_ignored(path, smoothing) -> None:
    a, w, b, y = _problem()
    y = torch.full_like(y, -100)
    (ours, g_ours), (ref, g_ref) = _both(a, w, y, PATHS[path], linear_bias=b,
                                         label_smoothing=smoothing)
    torch.testing.assert_close(ours, ref, equal_nan=True)
    for mine, theirs in zip(g_ours, g_ref, strict=True):
        assert (theirs == 0).all()
        torch.testing.assert_close(mine, theirs)


def test_default_chunk_size_bound_holds_below_h_64() -> None:
    for h in (16, 64, 128, 512):
        chunk, v = default_chunk_size(10**6, h), 1000
        assert chunk * v <= max(h / 2, 32) * v
        if h >= 64:
            assert chunk * v <= v * h / 2
    assert default_chunk_size(10**6, 16) * 1000 == 2 * (1000 * 16)  # twice dW at H = 16


# ------------------------------------------------------------------- beyond PyTorch


def _naive(a, w, b, y, *, softcap=None, lse_square_scale=0.0, denominator=None,
           reduction="mean", ignore_index=-100):
    """The loss written out on the whole logits, for autograd to differentiate."""
    x = a @ w.T + b
    if softcap is not None:
        x = softcap * torch.tanh(x / softcap)
    per = F.cross_entropy(x, y, reduction="none", ignore_index=ignore_index)
    keep = (y != ignore_index).to(x.dtype)
    per = per + lse_square_scale * keep * torch.logsumexp(x, 1) ** 2
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / (keep.sum() if denominator is None else denominator)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opts", [{"softcap": 2.0}, {"lse_square_scale": 0.1},
                                  {"softcap": 3.0, "lse_square_scale": 0.01},
                                  {"denominator": 13.0}])
def test_softcap_z_loss_denominator_against_naive(path, reduction, opts) -> None:
    a, w, b, y = _problem()
    y[2] = -100
    leaves = [t.clone().requires_grad_(True) for t in (a, w, b)]
    ours = byhand.linear_cross_entropy(leaves[0], leaves[1], y, linear_bias=leaves[2],
                                       reduction=reduction, **PATHS[path], **opts)
    g_ours = torch.autograd.grad(ours.sum(), leaves)
    leaves = [t.clone().requires_grad_(True) for t in (a, w, b)]
    ref = _naive(*leaves, y, reduction=reduction, **opts)
    g_ref = torch.autograd.grad(ref.sum(), leaves)
    torch.testing.assert_close(ours, ref)
    for mine, theirs in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(mine, theirs)


def test_return_z_loss_and_denominator_tensor() -> None:
    a, w, b, y = _problem()
    loss, z = byhand.linear_cross_entropy(a, w, y, linear_bias=b, lse_square_scale=0.1,
                                          return_z_loss=True, chunk_size=2)
    x = a @ w.T + b
    torch.testing.assert_close(z, 0.1 * (torch.logsumexp(x, 1) ** 2).mean())
    torch.testing.assert_close(loss, F.cross_entropy(x, y) + z)
    per, z_per = byhand.linear_cross_entropy(a, w, y, linear_bias=b, lse_square_scale=0.1,
                                             return_z_loss=True, reduction="none")
    torch.testing.assert_close(z_per, 0.1 * torch.logsumexp(x, 1) ** 2)
    torch.testing.assert_close(per, F.cross_entropy(x, y, reduction="none") + z_per)
    halves = [byhand.linear_cross_entropy(a[s], w, y[s], linear_bias=b,
                                          denominator=torch.tensor(7.0, dtype=a.dtype))
              for s in (slice(0, 2), slice(2, 7))]
    torch.testing.assert_close(sum(halves), F.cross_entropy(x, y))


def test_bad_new_options_are_refused() -> None:
    a, w, _, y = _problem()
    with pytest.raises(ValueError, match="softcap"):
        byhand.linear_cross_entropy(a, w, y, softcap=0.0)
    with pytest.raises(ValueError, match="lse_square_scale"):
        byhand.linear_cross_entropy(a, w, y, lse_square_scale=-1.0)


# ------------------------------------------------------------------- PyTorch's API


def test_k_dimensional_weight_as_pytorch() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(6, 2, 3, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(6, 2, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 6, (4, 2, 3), generator=gen)
    y[0, 1, 2] = -100
    for reduction in ("mean", "sum", "none"):
        (ours, g_ours), (ref, g_ref) = _both(a, w, y, {"chunk_size": 3}, linear_bias=b,
                                             reduction=reduction)
        torch.testing.assert_close(ours, ref)
        for mine, theirs in zip(g_ours, g_ref, strict=True):
            torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_k_dimensional_mean_forms_no_full_size_tensor(dtype) -> None:
    """The mean's denominator over every position is counted on a stand-in of the
    logits: no (N d1, V) tensor is formed for it, whatever the input's dtype."""
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(64, 16, generator=gen).to(dtype)
    w = torch.randn(4000, 8, 16, generator=gen).to(dtype)
    y = torch.randint(0, 4000, (64, 8), generator=gen)
    full = 64 * 8 * 4000 * 4  # the (N d1, V) float32 numbers: 8 MB
    with torch.no_grad():
        peak = peak_bytes(lambda: byhand.linear_cross_entropy(a, w, y))
        ours = byhand.linear_cross_entropy(a, w, y)
        ref = F.linear_cross_entropy(a.double(), w.double(), y)
    assert peak < full / 2, (peak, full)  # the old count took it whole: 8.2 MB
    tolerance = 1e-7 if dtype == torch.float64 else 2e-2  # bfloat16 rounds the logits
    torch.testing.assert_close(ours.double(), ref, rtol=tolerance, atol=0.0)


def test_pytorch_opinfo_samples() -> None:
    pytest.importorskip("expecttest")
    from torch.testing._internal.common_methods_invocations import op_db

    ops = [op for op in op_db if op.name == "nn.functional.linear_cross_entropy"]
    assert ops
    counts = {"samples": 0, "with_options": 0, "passed": 0}
    for op in ops:
        for sample in op.sample_inputs("cpu", torch.float64, requires_grad=True):
            counts["samples"] += 1
            counts["with_options"] += "options" in sample.kwargs
            # byhand differentiates with respect to input, weight and bias only
            args = (sample.input, sample.args[0], sample.args[1].detach())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = F.linear_cross_entropy(*args, **sample.kwargs)
            ours = byhand.linear_cross_entropy(*args, **sample.kwargs)
            torch.testing.assert_close(ours, ref)
            leaves = [t for t in (*args, sample.kwargs.get("linear_bias"))
                      if isinstance(t, torch.Tensor) and t.requires_grad]
            g_ref = torch.autograd.grad(ref.sum(), leaves)
            g_ours = torch.autograd.grad(ours.sum(), leaves)
            for mine, theirs in zip(g_ours, g_ref, strict=True):
                torch.testing.assert_close(mine, theirs)
            counts["passed"] += 1
    errors = 0
    for op in ops:
        for error in op.error_inputs("cpu"):
            sample = error.sample_input
            # an exception of PyTorch's type, whose message names the argument
            with pytest.raises(error.error_type, match=r"linear_cross_entropy: \w+"):
                byhand.linear_cross_entropy(sample.input, *sample.args, **sample.kwargs)
            errors += 1
    counts["error_inputs"] = errors
    print("linear_cross_entropy OpInfo samples:", counts)
    assert counts["passed"] == counts["samples"] >= 300 and counts["with_options"] >= 200
    assert errors >= 6


# ------------------------------------------------------------------- transforms


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compile_fullgraph_matches_eager(dtype) -> None:
    """float32 through chunks of rows; bfloat16 through blocks of classes (the default)."""
    a, w, b, y = _problem(n=40, h=8, v=300, dtype=dtype)
    chunks = {"chunk_size": 3} if dtype == torch.float32 else {}

    def f(a, w, b, y):
        return byhand.linear_cross_entropy(a, w, y, linear_bias=b, softcap=5.0,
                                           lse_square_scale=0.01, **chunks)

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    results = []
    for fn in (f, compiled):
        leaves = [t.clone().requires_grad_(True) for t in (a, w, b)]
        loss = fn(*leaves, y)
        results.append((loss, torch.autograd.grad(loss, leaves)))
    torch.testing.assert_close(results[0][0], results[1][0])
    for mine, theirs in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("path", list(PATHS))
def test_gradcheck_batched_and_forward_mode(reduction, path) -> None:
    a, w, b, y = _problem(n=5, h=3, v=9)
    y[1] = -100

    def f(a, w, b):
        return byhand.linear_cross_entropy(a, w, y, linear_bias=b, reduction=reduction,
                                           lse_square_scale=0.05, softcap=4.0, **PATHS[path])

    leaves = tuple(t.clone().requires_grad_(True) for t in (a, w, b))
    assert torch.autograd.gradcheck(f, leaves, check_batched_grad=True,
                                    check_forward_ad=True)


def test_is_grads_batched() -> None:
    a, w, b, y = _problem()
    leaves = [t.clone().requires_grad_(True) for t in (a, w, b)]
    loss = byhand.linear_cross_entropy(leaves[0], leaves[1], y, linear_bias=leaves[2],
                                       reduction="none", chunk_size=2)
    basis = torch.eye(loss.numel(), dtype=loss.dtype)
    rows = torch.autograd.grad(loss, leaves, basis, is_grads_batched=True, retain_graph=True)
    for i in range(loss.numel()):
        one = torch.autograd.grad(loss, leaves, basis[i], retain_graph=True)
        for batched, single in zip(rows, one, strict=True):
            torch.testing.assert_close(batched[i], single)
