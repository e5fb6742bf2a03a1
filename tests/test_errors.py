"""Bad input gets a clear error: the argument, what was expected, what was given.

Every case PyTorch rejects is rejected here too (the first test checks that PyTorch
does reject it, so the list cannot drift from the reference).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import byhand
from byhand import losses, mse

X = torch.randn(3, 4)
Y = torch.tensor([0, 1, 2])

CASES = [
    # (name, input, target, kwargs, error type, words the message must contain)
    ("int32 target", X, Y.int(), {}, TypeError, ["target", "torch.int64", "torch.int32"]),
    ("float index target", X, Y.float(), {}, TypeError, ["target", "torch.float32", "(3,)"]),
    ("batch mismatch", X, torch.tensor([0, 1]), {}, ValueError,
     ["target batch size", "3", "got 2"]),
    ("spatial mismatch", torch.randn(2, 4, 3), torch.zeros(2, 5, dtype=torch.long), {},
     ValueError, ["target shape", "(2, 3)", "(2, 5)"]),
    ("weight length", X, Y, {"weight": torch.ones(3)}, ValueError,
     ["weight", "(4,)", "(3,)"]),
    ("weight 2-d", X, Y, {"weight": torch.ones(2, 2)}, ValueError, ["weight", "(4,)", "(2, 2)"]),
    ("target too large", X, torch.tensor([0, 1, 7]), {}, IndexError,
     ["target", "[0, 3]", "got 7"]),
    ("negative target", X, torch.tensor([0, 1, -3]), {}, IndexError, ["target", "got -3"]),
    ("ignore_index with probabilities", X, torch.rand(3, 4), {"ignore_index": 1}, ValueError,
     ["ignore_index", "probability", "got ignore_index=1"]),
    ("label_smoothing above 1", X, Y, {"label_smoothing": 1.5}, ValueError,
     ["label_smoothing", "[0.0, 1.0]", "1.5"]),
    ("label_smoothing above 1 with probabilities", X, torch.rand(3, 4),
     {"label_smoothing": 1.5}, ValueError, ["label_smoothing", "1.5"]),
    ("unknown reduction", X, Y, {"reduction": "avg"}, ValueError,
     ["reduction", "'mean', 'sum' or 'none'", "'avg'"]),
    ("integer input", torch.ones(3, 4, dtype=torch.long), Y, {}, TypeError,
     ["input", "floating-point", "torch.int64"]),
    ("integer probabilities", X, torch.ones(3, 4, dtype=torch.long), {}, TypeError,
     ["target", "floating point", "torch.int64"]),
    ("0-d input", torch.tensor(1.0), torch.tensor(0), {}, ValueError, ["input", "0-dimensional"]),
]


@pytest.mark.parametrize(("name", "x", "y", "kwargs", "error", "words"), CASES,
                         ids=[c[0] for c in CASES])
def test_pytorch_rejects_it_too_and_ours_is_its_exception_type(name, x, y, kwargs, error,
                                                               words) -> None:
    """``except`` clauses written for PyTorch's exception catch ours too."""
    with pytest.raises((RuntimeError, ValueError, IndexError, NotImplementedError)) as theirs:
        F.cross_entropy(x, y, **kwargs)
    with pytest.raises(type(theirs.value)):
        losses.cross_entropy(x, y, **kwargs)


@pytest.mark.parametrize("fn", [losses.cross_entropy, byhand.cross_entropy],
                         ids=["pure", "drop-in"])
@pytest.mark.parametrize(("name", "x", "y", "kwargs", "error", "words"), CASES,
                         ids=[c[0] for c in CASES])
def test_cross_entropy_names_argument_expected_and_given(fn, name, x, y, kwargs, error,
                                                         words) -> None:
    with pytest.raises(error) as info:
        fn(x, y, **kwargs)
    message = str(info.value)
    assert message.startswith("cross_entropy:")
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize(("name", "x", "y", "kwargs", "error", "words"), CASES,
                         ids=[c[0] for c in CASES])
def test_cross_entropy_backward_rejects_the_same(name, x, y, kwargs, error, words) -> None:
    with pytest.raises(error):
        losses.cross_entropy_backward(torch.tensor(1.0), x, y, **kwargs)


@pytest.mark.parametrize(("x", "y", "kwargs", "error", "words"), [
    (X, Y.int(), {}, TypeError, ["nll_loss", "target", "torch.int32"]),
    (X, torch.tensor([0, 1]), {}, ValueError, ["nll_loss", "batch size"]),
    (X, torch.tensor([0, 9, 1]), {}, IndexError, ["nll_loss", "got 9"]),
    (X, Y, {"weight": torch.ones(5)}, ValueError, ["nll_loss", "weight", "(5,)"]),
    (X, Y, {"reduction": "max"}, ValueError, ["nll_loss", "reduction", "'max'"]),
])
def test_nll_loss_errors(x, y, kwargs, error, words) -> None:
    with pytest.raises((RuntimeError, ValueError, IndexError)) as theirs:
        F.nll_loss(x, y, **kwargs)
    for fn in (losses.nll_loss, byhand.nll_loss):
        with pytest.raises(error) as info:
            fn(x, y, **kwargs)
        assert isinstance(info.value, type(theirs.value))
        assert all(w in str(info.value) for w in words), str(info.value)


def test_ignore_index_may_lie_outside_the_classes() -> None:
    y = torch.tensor([0, 1, 9])
    torch.testing.assert_close(byhand.cross_entropy(X, y, ignore_index=9),
                               F.cross_entropy(X, y, ignore_index=9))


def test_fused_forward_backward_needs_a_scalar_reduction() -> None:
    with pytest.raises(ValueError, match=r"reduction must be 'mean' or 'sum'.*'none'"):
        losses.cross_entropy_forward_backward(X, Y, reduction="none")


def test_mse_shapes_that_do_not_broadcast() -> None:
    with pytest.raises(RuntimeError):
        torch.nn.functional.mse_loss(X, torch.zeros(3, 5))
    with pytest.raises(RuntimeError, match=r"size"), pytest.warns(UserWarning, match="target size"):
        mse.mse_loss(X, torch.zeros(3, 5))


def test_softmax_rejects_integer_input() -> None:
    with pytest.raises(TypeError, match="input must be a floating-point tensor; got dtype"):
        byhand.softmax(torch.ones(3, dtype=torch.long), dim=0)


def test_unbatched_input_needs_a_scalar_or_one_element_target() -> None:
    with pytest.raises(ValueError, match=r"unbatched input of shape \(4,\).*got target shape \(2,\)"):
        byhand.cross_entropy(torch.randn(4), torch.tensor([1, 2]))
    x = torch.randn(4)
    torch.testing.assert_close(byhand.cross_entropy(x, torch.tensor([1])),
                               F.cross_entropy(x, torch.tensor([1])))
