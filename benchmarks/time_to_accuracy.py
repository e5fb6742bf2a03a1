"""Seconds and epochs until the defaults of ``python -m byhand.mnist`` reach 98% on MNIST.

Trains the default network (hidden widths, batch size, learning rate and seed of the
CLI) on the full MNIST training set, evaluates on the 10,000 test images after every
epoch and stops at the first epoch that reaches the target accuracy. ``seconds``
counts training and the per-epoch evaluations; ``train_seconds`` training alone.
Prints one JSON line.

    python benchmarks/time_to_accuracy.py [--device auto] [--target 0.98] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time

from byhand import pick_device
from byhand.data import load_mnist
from byhand.device import describe_machine
from byhand.train import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_HIDDEN,
    DEFAULT_LR,
    DEFAULT_SEED,
    fit,
    mlp,
    prepare,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--quick", action="store_true",
                        help="one epoch on 2,000 images: a smoke run, not a measurement")
    args = parser.parse_args()
    device = pick_device(args.device)
    limit, max_epochs = (2000, 1) if args.quick else (None, args.max_epochs)
    data = prepare(load_mnist(), device=device, limit=limit)
    model = mlp((784, *DEFAULT_HIDDEN, 10), device=device, seed=DEFAULT_SEED)
    start = time.perf_counter()
    history = fit(model, data, epochs=max_epochs, batch_size=DEFAULT_BATCH_SIZE, lr=DEFAULT_LR,
                  seed=DEFAULT_SEED, progress=args.progress, stop_at_accuracy=args.target)
    seconds = time.perf_counter() - start
    reached = history.test_accuracy[-1] >= args.target
    print(json.dumps({
        "benchmark": "time_to_accuracy",
        "target": args.target,
        "reached": reached,
        "epochs": history.epochs,
        "seconds": round(seconds, 3),
        "train_seconds": round(history.total_seconds, 3),
        "seconds_per_epoch": round(history.total_seconds / history.epochs, 3),
        "test_accuracy": history.test_accuracy[-1],
        "test_accuracy_per_epoch": history.test_accuracy,
        "hidden": list(DEFAULT_HIDDEN),
        "batch_size": DEFAULT_BATCH_SIZE,
        "lr": DEFAULT_LR,
        "seed": DEFAULT_SEED,
        "train_images": int(data.x_train.shape[0]),
        "quick": args.quick,
        "machine": describe_machine(device),
    }))


if __name__ == "__main__":
    main()
