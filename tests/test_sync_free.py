"""The training step never reads the device on the host and never copies a number to it.

On ``meta`` tensors there are no values at all: any ``.item()``, ``.tolist()``,
``float(t)`` or ``bool(t)`` raises, so a whole step that runs there reads nothing.
With CUDA, ``torch.cuda.set_sync_debug_mode("error")`` turns every synchronising call
(a device-to-host read, a blocking host-to-device copy) into an error.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import byhand
from byhand import losses
from byhand.train import mlp, train_step

SIZES = (12, 16, 8, 5)


def _batch(device: str, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, SIZES[0], generator=gen).to(device)
    y = torch.randint(0, SIZES[-1], (n,), generator=gen).to(device)
    return x, y


def test_meta_tensors_have_no_values_to_read() -> None:
    with pytest.raises((NotImplementedError, RuntimeError)):
        torch.zeros(3, device="meta").sum().item()


def test_a_whole_training_step_runs_on_meta_tensors() -> None:
    model = mlp(SIZES, device="meta", seed=0)
    x, y = _batch("meta")
    loss = train_step(model, x, y, lr=0.1)
    assert loss.device.type == "meta" and loss.shape == ()
    for param, grad in model.parameters():
        assert grad is not None and grad.device.type == "meta" and grad.shape == param.shape


@pytest.mark.parametrize("options", [
    {}, {"reduction": "sum"}, {"label_smoothing": 0.1}, {"ignore_index": 2},
    {"weight": "w"}, {"target": "prob"},
], ids=["plain", "sum", "smoothing", "ignore_index", "weight", "probabilities"])
def test_losses_propagate_shapes_on_meta_as_pytorch(options: dict) -> None:
    options = dict(options)
    x = torch.empty(6, 5, 3, device="meta")
    y = torch.empty(6, 3, dtype=torch.int64, device="meta")
    if options.pop("target", None) == "prob":
        y = torch.empty(6, 5, 3, device="meta")
    if options.get("weight") == "w":
        options["weight"] = torch.empty(5, device="meta")
    for reduction in ("mean", "sum", "none"):
        options["reduction"] = reduction
        ref = F.cross_entropy(x, y, **options)
        ours = losses.cross_entropy(x, y, **options)
        assert (ours.device, ours.shape, ours.dtype) == (ref.device, ref.shape, ref.dtype)
        grad = losses.cross_entropy_backward(torch.empty_like(ref), x, y, **options)
        assert grad.device.type == "meta" and grad.shape == x.shape
        if reduction != "none":
            loss, grad = losses.cross_entropy_forward_backward(x, y, **options)
            assert loss.shape == () and grad.shape == x.shape


def test_nll_and_drop_ins_run_on_meta() -> None:
    x = torch.empty(4, 3, device="meta", requires_grad=True)
    y = torch.empty(4, dtype=torch.int64, device="meta")
    assert losses.nll_loss(x, y).shape == F.nll_loss(x, y).shape
    assert losses.nll_loss_backward(torch.empty((), device="meta"), x, y).shape == x.shape
    for fn in (byhand.cross_entropy, byhand.nll_loss):
        (grad,) = torch.autograd.grad(fn(x, y), x)
        assert grad.device.type == "meta" and grad.shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA: the sync-debug check needs a CUDA device")
def test_a_training_step_never_synchronises_on_cuda() -> None:
    model = mlp(SIZES, device="cuda", seed=0)
    x, y = _batch("cuda")
    train_step(model, x, y, lr=0.1)  # warm-up: first calls may initialise lazily
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            loss = train_step(model, x, y, lr=0.1)
        loss, grad = losses.cross_entropy_forward_backward(model.forward(x), y, label_smoothing=0.1)
        grad = losses.cross_entropy_backward(loss, model.forward(x), y, ignore_index=1)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert torch.isfinite(loss).item() and grad.shape == (x.shape[0], SIZES[-1])
