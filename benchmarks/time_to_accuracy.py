"""Training seconds until the defaults of ``python -m byhand.mnist`` reach a validation accuracy.

Trains the default network (hidden widths, batch size, learning rate and seed of the
CLI) twice from the same weights on the same batches: by hand (``byhand.train.fit``)
and as its autograd twin (``nn.Linear``, ``F.cross_entropy``, ``loss.backward()``,
``torch.optim.SGD``, through the same loop). Each run is evaluated on the 10,000
validation rows after every epoch and stops at the first epoch that reaches
``--target``; the 10,000 test images are evaluated once, after training. ``seconds``
counts training and the per-epoch evaluations, ``train_seconds`` training alone.
Prints one JSON line.

    python benchmarks/time_to_accuracy.py [--device auto] [--target 0.98] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from byhand import pick_device
from byhand.data import load_mnist
from byhand.device import describe_machine
from byhand.timing import load_average
from byhand.train import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_HIDDEN,
    DEFAULT_LR,
    DEFAULT_SEED,
    Tensors,
    evaluate,
    fit,
    mlp,
    prepare,
    torch_mlp,
    torch_trainer,
)


def run(side: str, data: Tensors, target: float, max_epochs: int) -> dict[str, Any]:
    """Train one side ("manual" or "autograd") until ``target``; return its figures."""
    model = mlp((784, *DEFAULT_HIDDEN, 10), device=data.x_train.device, seed=DEFAULT_SEED)
    net = model if side == "manual" else torch_mlp(model)
    step = None if side == "manual" else torch_trainer(net, DEFAULT_LR)
    start = time.perf_counter()
    history = fit(net, data, epochs=max_epochs, batch_size=DEFAULT_BATCH_SIZE, lr=DEFAULT_LR,
                  seed=DEFAULT_SEED, progress=False, stop_at_accuracy=target, step=step)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = evaluate(net, data.x_test, data.y_test)
    return {
        "reached": history.epochs_to(target) is not None,
        "epochs": history.epochs,
        "seconds": round(seconds, 3),
        "train_seconds": round(history.total_seconds, 3),
        "seconds_per_epoch": round(history.total_seconds / history.epochs, 3),
        "valid_accuracy": history.valid_accuracy[-1],
        "valid_accuracy_per_epoch": history.valid_accuracy,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--target", type=float, default=0.98,
                        help="validation accuracy at which training stops")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true",
                        help="one epoch on 2,000 images: a smoke run, not a measurement")
    args = parser.parse_args()
    device = pick_device(args.device)
    limit, max_epochs = (2000, 1) if args.quick else (None, args.max_epochs)
    data = prepare(load_mnist(), device=device, limit=limit)
    load_before = load_average()
    sides = {side: run(side, data, args.target, max_epochs) for side in ("manual", "autograd")}
    print(json.dumps({
        "benchmark": "time_to_accuracy",
        "target_valid_accuracy": args.target,
        **sides,
        "hidden": list(DEFAULT_HIDDEN),
        "batch_size": DEFAULT_BATCH_SIZE,
        "lr": DEFAULT_LR,
        "seed": DEFAULT_SEED,
        "max_epochs": max_epochs,
        "train_images": int(data.x_train.shape[0]),
        "valid_images": int(data.x_valid.shape[0]),
        "test_images": int(data.x_test.shape[0]),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "quick": args.quick,
        "machine": describe_machine(device),
    }))


if __name__ == "__main__":
    main()
