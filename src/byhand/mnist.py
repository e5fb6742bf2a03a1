"""Train an MLP on MNIST from scratch with the hand-written backward: ``python -m byhand.mnist``.

The defaults reach at least 98% test accuracy on MNIST. Progress bars go to stderr;
the last line on stdout is one JSON object with the settings and the results, e.g.::

    python -m byhand.mnist --epochs 3 --hidden 256 --device cpu
    python -m byhand.mnist --dataset fashion --hidden 512 256 --limit 10000

The data are read by :func:`byhand.data.load_mnist` (``$BYHAND_DATA``, else
``~/.cache/byhand``, downloaded when missing).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import data as byhand_data
from .device import pick_device
from .train import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_HIDDEN,
    DEFAULT_LR,
    DEFAULT_SEED,
    fit,
    mlp,
    prepare,
)

__all__ = ["build_parser", "main", "run"]

DATASETS = {"mnist": byhand_data.load_mnist, "fashion": byhand_data.load_fashion_mnist}


def _checked(convert: Callable[[str], Any], accept: Callable[[Any], bool],
             expected: str) -> Callable[[str], Any]:
    """An argparse type: convert the text, then insist on ``accept``, naming ``expected``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_seed = _checked(int, lambda v: 0 <= v < 2**64, "an integer from 0 to 2**64 - 1")
_positive_float = _checked(float, lambda v: 0 < v < float("inf"), "a positive finite number")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` only for options whose default is a value."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The command line, with every default shown in ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m byhand.mnist",
        description="Train a multilayer perceptron on MNIST (or Fashion-MNIST) with a "
                    "hand-written backward pass and plain SGD; print one JSON line of results.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS,
                        help="passes over the training set")
    parser.add_argument("--hidden", type=_positive_int, nargs="+", default=list(DEFAULT_HIDDEN),
                        metavar="N", help="widths of the hidden layers, e.g. --hidden 512 256")
    parser.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE,
                        help="rows per minibatch")
    parser.add_argument("--lr", type=_positive_float, default=DEFAULT_LR,
                        help="SGD learning rate")
    parser.add_argument("--seed", type=_seed, default=DEFAULT_SEED,
                        help="seed of the initial weights and of the batch order")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                        help="where to train; auto picks cuda, then mps, then cpu")
    parser.add_argument("--dataset", choices=tuple(DATASETS), default="mnist",
                        help="which dataset to train on")
    parser.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                        help="use only the first N training and N test images (a quick run)")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="data folder; without it $BYHAND_DATA, else ~/.cache/byhand")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the data, train, and return the JSON-ready results."""
    device = pick_device(args.device)
    dataset = DATASETS[args.dataset](root=args.data)
    tensors = prepare(dataset, device=device, limit=args.limit)
    sizes = [tensors.x_train.shape[1], *args.hidden, len(dataset.classes)]
    model = mlp(sizes, device=device, seed=args.seed)
    start = time.perf_counter()
    history = fit(model, tensors, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  seed=args.seed, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    return {
        "dataset": dataset.name,
        "test_accuracy": history.test_accuracy[-1],
        "test_loss": history.test_loss[-1],
        "train_loss": history.train_loss[-1],
        "seconds": round(seconds, 3),
        "train_seconds": round(history.total_seconds, 3),
        "epochs": history.epochs,
        "device": str(device),
        "hidden": list(args.hidden),
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "train_images": int(tensors.x_train.shape[0]),
        "test_images": int(tensors.x_test.shape[0]),
        "test_accuracy_per_epoch": history.test_accuracy,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, train, print one JSON line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = run(args)
        _check_finite(result)
        line = json.dumps(result, allow_nan=False)
    except (RuntimeError, OSError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(line, flush=True)
    return 0


def _check_finite(result: dict[str, Any]) -> None:
    """Raise if a number in ``result`` is NaN or infinite: training diverged, and JSON has no NaN."""
    bad = [f"{key} = {value}" for key, value in result.items()
           if any(isinstance(v, float) and not math.isfinite(v)
                  for v in (value if isinstance(value, list) else [value]))]
    if bad:
        raise RuntimeError(f"training diverged: {', '.join(bad)}; try a smaller --lr "
                           f"(this run used {result['lr']})")


if __name__ == "__main__":
    sys.exit(main())
