"""gradcheck and gradgradcheck of the drop-ins, whose backward is ours, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import byhand

OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.3},
    {"ignore_index": 0},
    {"weight": "w"},
    {"weight": "w", "label_smoothing": 0.2, "ignore_index": 0},
]


def _options(opts: dict, n_classes: int) -> dict:
    opts = dict(opts)
    if opts.get("weight") == "w":
        opts["weight"] = torch.linspace(0.5, 2.0, n_classes, dtype=torch.float64)
    return opts


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("shape", [(5,), (4, 5), (3, 5, 2, 2)])
def test_cross_entropy_gradcheck_and_gradgradcheck(opts: dict, shape: tuple) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(shape, dtype=torch.float64, generator=gen, requires_grad=True)
    target_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
    # An unbatched target must not be the ignored class 0: its loss would be 0/0.
    target = torch.randint(1 if len(shape) == 1 else 0, 5, target_shape, generator=gen)
    kwargs = _options(opts, 5)
    assert gradcheck(lambda z: byhand.cross_entropy(z, target, **kwargs), (x,))
    assert gradgradcheck(lambda z: byhand.cross_entropy(z, target, **kwargs), (x,))


@pytest.mark.parametrize("opts", [{}, {"weight": "w"}, {"label_smoothing": 0.25},
                                  {"reduction": "none"}])
def test_probability_targets_gradcheck(opts: dict) -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.rand(3, 4, 2, dtype=torch.float64, generator=gen).softmax(1)
    kwargs = _options(opts, 4)
    assert gradcheck(lambda z: byhand.cross_entropy(z, target, **kwargs), (x,))
    assert gradgradcheck(lambda z: byhand.cross_entropy(z, target, **kwargs), (x,))


@pytest.mark.parametrize("opts", [{}, {"reduction": "sum"}, {"weight": "w", "ignore_index": 2}])
def test_nll_loss_gradcheck(opts: dict) -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.randint(0, 4, (6,), generator=gen)
    kwargs = _options(opts, 4)
    assert gradcheck(lambda z: byhand.nll_loss(z, target, **kwargs), (x,))


def test_hessian_vector_product_through_our_backward_matches_pytorch() -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(4, 6, dtype=torch.float64, generator=gen)
    target = torch.randint(0, 6, (4,), generator=gen)
    v = torch.randn_like(x)

    def hvp(loss_fn):
        z = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(z, target), z, create_graph=True)
        (h,) = torch.autograd.grad((g * v).sum(), z)
        return h

    torch.testing.assert_close(hvp(byhand.cross_entropy), hvp(F.cross_entropy))


@pytest.mark.parametrize("options", [
    {}, {"reduction": "sum"}, {"reduction": "none", "label_smoothing": 0.3}, {"weight": True},
    {"weight": True, "label_smoothing": 0.2, "reduction": "none"},
], ids=["mean", "sum", "none-smoothing", "weight", "weight-smoothing-none"])
def test_probability_target_and_weight_get_pytorch_gradients(options: dict) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 2, dtype=torch.float64, generator=gen)
    t = torch.rand(4, 3, 2, dtype=torch.float64, generator=gen).softmax(1)
    w = torch.rand(3, dtype=torch.float64, generator=gen) + 0.5
    options = dict(options)
    use_weight = options.pop("weight", False)

    def grads(fn: object) -> tuple[torch.Tensor, ...]:
        leaves = [a.clone().requires_grad_(True) for a in (x, t, w)]
        out = fn(leaves[0], leaves[1], weight=leaves[2] if use_weight else None,  # type: ignore[operator]
                 **options)
        return (out, *torch.autograd.grad(out.sum(), leaves[:3] if use_weight else leaves[:2]))

    for ours, ref in zip(grads(byhand.cross_entropy), grads(F.cross_entropy), strict=True):
        torch.testing.assert_close(ours, ref)
    weight = w.clone().requires_grad_(True) if use_weight else None
    assert torch.autograd.gradcheck(
        lambda a, b: byhand.cross_entropy(a, b, weight=weight, **options),
        (x.clone().requires_grad_(True), t.clone().requires_grad_(True)),
        check_batched_grad=True, check_forward_ad=True)


def test_a_weight_that_requires_grad_with_class_indices_is_refused_as_pytorch() -> None:
    x, y = torch.randn(2, 3, requires_grad=True), torch.tensor([0, 2])
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        F.cross_entropy(x, y, weight=w)
    for fn in (byhand.cross_entropy, byhand.nll_loss):
        with pytest.raises(RuntimeError, match="weight"):
            fn(x, y, weight=w)


def test_drop_in_chains_into_a_network() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 4)
    x, y = torch.randn(8, 3), torch.randint(0, 4, (8,))
    byhand.cross_entropy(layer(x), y).backward()
    ours = layer.weight.grad.clone()
    layer.zero_grad()
    F.cross_entropy(layer(x), y).backward()
    torch.testing.assert_close(ours, layer.weight.grad)
