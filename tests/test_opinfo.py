"""PyTorch's own test inputs, run against byhand: OpInfo and ModuleInfo samples and error inputs.

``torch.testing._internal.common_methods_invocations.op_db`` holds PyTorch's sample
inputs for ``softmax``, ``log_softmax``, ``logsumexp`` and ``nn.functional.cross_entropy``
/ ``nll_loss`` / ``mse_loss``; ``common_modules.module_db`` those of ``CrossEntropyLoss``,
``NLLLoss`` and ``MSELoss``, with their error inputs. Every sample that PyTorch accepts
must be accepted by byhand with PyTorch's value, dtype, shape and gradients (float32 and
float64); in float16 and bfloat16 our error against a float64 reference may exceed
PyTorch's by at most one unit in the last place. Every error input must raise an
exception of PyTorch's type whose message names the argument. CPU only; the counts per
op are printed (``pytest -rA``) and summed in ``test_summary``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import byhand

common_methods_invocations = pytest.importorskip(
    "torch.testing._internal.common_methods_invocations", reason="needs expecttest")
common_modules = pytest.importorskip("torch.testing._internal.common_modules")

OURS: dict[str, Callable[..., Tensor]] = {
    "softmax": byhand.softmax,
    "log_softmax": byhand.log_softmax,
    "logsumexp": byhand.logsumexp,
    "nn.functional.cross_entropy": byhand.cross_entropy,
    "nn.functional.nll_loss": byhand.nll_loss,
    "nn.functional.mse_loss": byhand.mse_loss,
}
OPINFOS = [op for op in common_methods_invocations.op_db if op.name in OURS]
MODULES = {"CrossEntropyLoss": byhand.cross_entropy, "NLLLoss": byhand.nll_loss,
           "MSELoss": byhand.mse_loss}
MODULE_INFOS = [m for m in common_modules.module_db if m.module_cls.__name__ in MODULES]
DTYPES = (torch.float32, torch.float64)
HALF = (torch.float16, torch.bfloat16)
COUNTS: dict[str, Counter[str]] = {}


def _map(obj: Any, fn: Callable[[Tensor], Any]) -> Any:
    """Apply ``fn`` to every tensor in a nest of lists, tuples and dicts."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _map(v, fn) for k, v in obj.items()}
    return obj


def _leaves(obj: Any) -> list[Tensor]:
    found: list[Tensor] = []
    _map(obj, lambda t: found.append(t) if t.requires_grad else None)
    return found


def _fresh(args: Any) -> Any:
    """New leaves with the same values (and requires_grad) for each run."""
    return _map(args, lambda t: t.detach().clone().requires_grad_(t.requires_grad))


def _run(fn: Callable[..., Tensor], args: tuple[Any, ...], kwargs: dict[str, Any],
         cotangent_seed: int = 0) -> tuple[Tensor, tuple[Tensor | None, ...] | Exception | None]:
    """The output and the gradients of every leaf (an exception where autograd refuses)."""
    args, kwargs = _fresh(args), _fresh(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn(*args, **kwargs)
    leaves = _leaves((args, kwargs))
    if not leaves or not out.requires_grad:
        return out.detach(), None
    gen = torch.Generator().manual_seed(cotangent_seed)
    real = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    cotangent = (real.to(out.dtype) if not out.is_complex()
                 else torch.complex(real, real.flip(-1) if real.dim() else real).to(out.dtype))
    try:
        grads = torch.autograd.grad(out, leaves, cotangent, allow_unused=True)
    except RuntimeError as error:
        return out.detach(), error
    return out.detach(), grads


def _check_same(ours: Tensor, ref: Tensor) -> None:
    assert (ours.dtype, ours.shape) == (ref.dtype, ref.shape), (ours.dtype, ours.shape, ref.dtype, ref.shape)
    torch.testing.assert_close(ours, ref, equal_nan=True)


def _compare(name: str, fn_ours: Callable[..., Tensor], fn_ref: Callable[..., Tensor],
             args: tuple[Any, ...], kwargs: dict[str, Any], counts: Counter[str],
             failures: list[str]) -> None:
    counts["samples"] += 1
    try:
        ref, ref_grads = _run(fn_ref, args, kwargs)
    except Exception:  # PyTorch refuses the sample: nothing to match
        counts["refused_by_torch"] += 1
        return
    counts["accepted_by_torch"] += 1
    try:
        ours, our_grads = _run(fn_ours, args, kwargs)
        _check_same(ours, ref)
        if isinstance(ref_grads, Exception):
            assert our_grads is not None
        elif ref_grads is not None:
            assert isinstance(our_grads, tuple), our_grads
            for mine, theirs in zip(our_grads, ref_grads, strict=True):
                if theirs is None:
                    assert mine is None or not mine.any()
                else:
                    assert mine is not None
                    _check_same(mine, theirs)
    except Exception as error:  # a mismatch or a refusal of ours: report it with the sample
        failures.append(f"{name}: {type(error).__name__}: {str(error)[:300]}")
        return
    counts["passed"] += 1


def _half_ok(fn_ours: Callable[..., Tensor], fn_ref: Callable[..., Tensor],
             args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Ours no further from a float64 reference than PyTorch's half result plus one ulp."""
    def upcast(t: Tensor) -> Tensor:
        return t.double() if t.dtype in HALF else t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = fn_ref(*args, **kwargs).detach()
        exact = fn_ref(*_map(args, upcast), **_map(kwargs, upcast)).detach()
        ours = fn_ours(*args, **kwargs).detach()
    assert (ours.dtype, ours.shape) == (ref.dtype, ref.shape)
    if ref.dtype not in HALF:  # e.g. dtype=torch.float64: a float64 result, judged as one
        _check_same(ours, ref)
        return True
    ulp = torch.finfo(ref.dtype).eps * exact.abs().clamp_min(torch.finfo(ref.dtype).tiny)
    err_ours = (ours.double() - exact).abs().nan_to_num(nan=0.0, posinf=0.0)
    err_ref = (ref.double() - exact).abs().nan_to_num(nan=0.0, posinf=0.0)
    same_nan = torch.equal(ours.isnan(), ref.isnan())
    return same_nan and bool((err_ours <= err_ref + ulp).all())


def _report(name: str, counts: Counter[str], failures: list[str]) -> None:
    COUNTS[name] = counts
    print(f"{name}: {dict(counts)}")
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize("op", OPINFOS, ids=lambda op: op.name + ("." + op.variant_test_name
                                                                   if op.variant_test_name else ""))
def test_opinfo_samples(op: Any) -> None:
    ours = OURS[op.name]
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for dtype in DTYPES:
        for sample in op.sample_inputs("cpu", dtype, requires_grad=op.supports_autograd):
            _compare(f"{op.name} {dtype} {sample.summary() if hasattr(sample, 'summary') else ''}",
                     ours, op.op, (sample.input, *sample.args), sample.kwargs, counts, failures)
    for dtype in HALF:
        for sample in op.sample_inputs("cpu", dtype, requires_grad=False):
            args = (sample.input, *sample.args)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    op.op(*args, **sample.kwargs)
            except Exception:
                continue
            counts["half_samples"] += 1
            try:
                ok = _half_ok(ours, op.op, args, sample.kwargs)
            except Exception as error:
                failures.append(f"{op.name} {dtype}: {type(error).__name__}: {error}")
                continue
            if ok:
                counts["half_passed"] += 1
            else:
                failures.append(f"{op.name} {dtype}: further from float64 than PyTorch + 1 ulp")
    _report(op.name + ("." + op.variant_test_name if op.variant_test_name else ""), counts, failures)


def _module_call(name: str, kwargs: dict[str, Any]) -> Callable[..., Tensor]:
    """byhand's functional form of a loss module constructed with ``kwargs``."""
    fn = MODULES[name]

    def call(input: Tensor, target: Tensor) -> Tensor:
        return fn(input, target, **kwargs)
    return call


@pytest.mark.parametrize("info", MODULE_INFOS, ids=lambda m: m.module_cls.__name__)
def test_module_samples(info: Any) -> None:
    name = info.module_cls.__name__
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for dtype in DTYPES:
        samples = info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True,
                                          training=True)
        for sample in samples:
            c, f = sample.constructor_input, sample.forward_input
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = info.module_cls(*c.args, **c.kwargs)
            _compare(f"{name} {dtype} {c.kwargs}", _module_call(name, c.kwargs), module,
                     tuple(f.args), dict(f.kwargs), counts, failures)
    _report(name, counts, failures)


ARGUMENT_NAMES = ("weight", "ignore_index", "label_smoothing", "reduction", "target", "input")


def _named_argument(regex: str) -> str:
    """The argument an error input is about, read off PyTorch's expected message."""
    lowered = regex.lower()
    if "scalar type" in lowered:  # NLL with a weight of another dtype
        return "weight"
    if "batch_size" in lowered:
        return "batch size"
    return next(arg for arg in ARGUMENT_NAMES if arg in lowered)


@pytest.mark.parametrize("info", [m for m in MODULE_INFOS if m.module_error_inputs_func],
                         ids=lambda m: m.module_cls.__name__)
def test_module_error_inputs(info: Any) -> None:
    name = info.module_cls.__name__
    counts: Counter[str] = Counter()
    failures: list[str] = []
    errors = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                           requires_grad=True, training=True)
    for error_input in errors:
        sample = error_input.module_error_input
        c, f = sample.constructor_input, sample.forward_input
        counts["error_inputs"] += 1
        with (pytest.raises(error_input.error_type, match=error_input.error_regex),
              warnings.catch_warnings()):
            warnings.simplefilter("ignore")
            info.module_cls(*c.args, **c.kwargs)(*f.args, **f.kwargs)
        try:
            _module_call(name, c.kwargs)(*f.args, **f.kwargs)
        except error_input.error_type as error:
            argument = _named_argument(error_input.error_regex)
            if argument in str(error):
                counts["passed"] += 1
            else:
                failures.append(f"{name} {c.kwargs}: message does not name {argument}: {error}")
        except Exception as error:
            failures.append(f"{name} {c.kwargs}: {type(error).__name__} where PyTorch raises "
                            f"{error_input.error_type.__name__}: {error}")
        else:
            failures.append(f"{name} {c.kwargs}: no error where PyTorch raises "
                            f"{error_input.error_type.__name__}")
    _report(name + " errors", counts, failures)


# ---------------------------------------------------------------- beyond PyTorch's lists

X, Y = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 2, 1, 1])
ERRORS: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any], str]] = [
    ("float target", byhand.cross_entropy, (X, torch.rand(4)), {}, "target"),
    ("float target, nll", byhand.nll_loss, (X, torch.rand(4)), {}, "target"),
    ("ignore_index=2.0", byhand.cross_entropy, (X, Y), {"ignore_index": 2.0}, "ignore_index"),
    ("ignore_index=True", byhand.cross_entropy, (X, Y), {"ignore_index": True}, "ignore_index"),
    ("ignore_index=2.0, nll", byhand.nll_loss, (X, Y), {"ignore_index": 2.0}, "ignore_index"),
    ("list input", byhand.cross_entropy, (X.tolist(), Y), {}, "input"),
    ("list input, nll", byhand.nll_loss, (X.tolist(), Y), {}, "input"),
    ("mse shapes that do not broadcast", byhand.mse_loss, (X, torch.zeros(4, 5)), {}, "size"),
    ("softmax dim=1.0", byhand.softmax, (X, 1.0), {}, "dim"),
]
REFERENCE = {byhand.cross_entropy: F.cross_entropy, byhand.nll_loss: F.nll_loss,
             byhand.softmax: F.softmax, byhand.mse_loss: F.mse_loss}


@pytest.mark.parametrize(("fn", "args", "kwargs", "argument"),
                         [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_more_error_inputs_raise_pytorch_types(fn: Callable[..., Any], args: tuple[Any, ...],
                                               kwargs: dict[str, Any], argument: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as theirs:
            REFERENCE[fn](*args, **kwargs)
        with pytest.raises(theirs.type) as ours:
            fn(*args, **kwargs)
    assert argument in str(ours.value), ours.value


ACCEPTED: list[tuple[str, Callable[..., Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
    ("size_average as 4th positional", byhand.cross_entropy, F.cross_entropy, (X, Y, None, False), {}),
    ("reduce=False", byhand.nll_loss, F.nll_loss, (X.log_softmax(1), Y), {"reduce": False}),
    ("elementwise_mean", byhand.cross_entropy, F.cross_entropy, (X, Y), {"reduction": "elementwise_mean"}),
    ("mse size_average", byhand.mse_loss, F.mse_loss, (X, X.flip(0)), {"size_average": False}),
    ("softmax without dim, 3-d", byhand.softmax, F.softmax, (X.view(2, 2, 3),), {}),
    ("log_softmax without dim, 4-d", byhand.log_softmax, F.log_softmax, (X.view(1, 2, 2, 3),), {}),
    ("softmax dim=np.int64(1)", byhand.softmax, torch.softmax, (X, np.int64(1)), {}),
    ("logsumexp dim=np.int64(1)", byhand.logsumexp, torch.logsumexp, (X, np.int64(1)), {}),
    ("softmax dtype", byhand.softmax, F.softmax, (X, 1), {"dtype": torch.float64}),
    ("unbatched, (1,) target", byhand.cross_entropy, F.cross_entropy, (X[0], Y[:1]), {"reduction": "none"}),
    ("unbatched, (1,) target, nll", byhand.nll_loss, F.nll_loss, (X[0], Y[:1]), {}),
    ("complex logsumexp", byhand.logsumexp, torch.logsumexp,
     (torch.complex(X, X.flip(1)).double(), 1), {}),
    ("mse broadcasting", byhand.mse_loss, F.mse_loss, (X[:, :1], X[:, 1]), {}),
    ("mse bool and float", byhand.mse_loss, F.mse_loss, (X > 0, X), {}),
    ("mse weight", byhand.mse_loss, F.mse_loss, (X, X.flip(0)), {"weight": X.abs()}),
]


@pytest.mark.parametrize(("ours", "theirs", "args", "kwargs"), [case[1:] for case in ACCEPTED],
                         ids=[case[0] for case in ACCEPTED])
def test_more_samples_match_pytorch_with_its_warnings(
        ours: Callable[..., Tensor], theirs: Callable[..., Tensor], args: tuple[Any, ...],
        kwargs: dict[str, Any]) -> None:
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        ref = theirs(*args, **kwargs)
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        got = ours(*args, **kwargs)
    _check_same(got, ref)
    assert ([(w.category, str(w.message)) for w in ours_warned]
            == [(w.category, str(w.message)) for w in theirs_warned])
    leaf = args[0]
    if isinstance(leaf, Tensor) and (leaf.is_floating_point() or leaf.is_complex()):
        counts = Counter[str]()
        failures: list[str] = []
        _compare("grad", ours, theirs, (leaf.detach().requires_grad_(True), *args[1:]), kwargs,
                 counts, failures)
        assert not failures, failures


def test_summary() -> None:
    """The counts per op (the other tests of this file fill them; run with ``-rA`` to see)."""
    for name, counts in sorted(COUNTS.items()):
        print(f"{name:45s} {dict(counts)}")
