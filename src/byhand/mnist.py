"""Train an MLP on MNIST from scratch with the hand-written backward: ``python -m byhand.mnist``.

The 60,000 training images are split into 50,000 to train on and 10,000 of validation
(:func:`byhand.train.prepare`); the network is evaluated on the validation rows after
every epoch and on the 10,000 test images once, at the end. Progress bars go to
stderr; the last line on stdout is one JSON object with the settings and the results
(validation and test accuracy among them), e.g.::

    python -m byhand.mnist --epochs 3 --hidden 256 --device cpu
    python -m byhand.mnist --dataset fashion --hidden 512 256 --limit 10000
    python -m byhand.mnist --processes 2          # data parallel, spawned on 127.0.0.1
    torchrun --nproc-per-node 2 -m byhand.mnist   # the same, started by torchrun

The data are read by :func:`byhand.data.load_mnist` (``$BYHAND_DATA``, else
``~/.cache/byhand``, downloaded when missing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import data as byhand_data
from . import launcher
from .data_parallel import MnistRun, train_mnist
from .device import pick_device
from .train import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_HIDDEN,
    DEFAULT_LR,
    DEFAULT_SEED,
    TrainConfig,
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


MAX_SIZE = 2**31 - 1  # widths, batch sizes, counts: far past any machine, inside every index type
_positive = _checked(int, lambda v: v >= 1, "a positive integer")


def _positive_int(text: str) -> int:
    """A positive integer no larger than :data:`MAX_SIZE` (argparse type)."""
    value: int = _positive(text)
    if value > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"expected a positive integer up to {MAX_SIZE}; got {value}")
    return value
_seed = _checked(int, lambda v: 0 <= v < 2**64, "an integer from 0 to 2**64 - 1")
_positive_float = _checked(float, lambda v: 0 < v < float("inf"), "a positive finite number")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (``--help`` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` only for options whose default is a value."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The command line, with every default shown in ``--help``.

    Examples:
        >>> args = build_parser().parse_args([])
        >>> args.epochs, args.hidden, args.batch_size, args.lr, args.seed, args.device
        (8, [800], 128, 0.3, 0, 'auto')
        >>> build_parser().parse_args(["--hidden", "512", "256", "--limit", "600"]).hidden
        [512, 256]
    """
    parser = _Parser(
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
                        help="use only the first N training and N test images (a quick run); "
                             "a sixth of the N training images are kept for validation")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="data folder; without it $BYHAND_DATA, else ~/.cache/byhand")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--processes", type=_positive_int, default=None, metavar="P",
                        help="train data-parallel on P processes of this machine, each on its "
                             "shard of every batch (gloo on the CPU, NCCL on CUDA); under "
                             "torchrun the default is its world size")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any] | None:
    """Load the data, train on one process or many, and return the JSON-ready results.

    ``args`` comes from :func:`build_parser`; ``--limit`` makes a quick run on the
    first images of each file (the data are read, or downloaded, first). With several
    processes (``--processes``, or under torchrun) the workers are spawned on
    127.0.0.1, or this is one of them; ranks other than 0 return ``None``. A worker
    that fails, dies or hangs ends the run with a :class:`~byhand.launcher.WorkerError`.

    Examples:
        >>> args = build_parser().parse_args(["--limit", "600", "--epochs", "1"])
        >>> args.limit, args.epochs, args.dataset, args.data, args.processes
        (600, 1, 'mnist', None, None)
    """
    device = pick_device(args.device)
    job = MnistRun(load=DATASETS[args.dataset], root=args.data, limit=args.limit,
                   hidden=list(args.hidden), device=device.type,
                   train=TrainConfig(args.epochs, args.batch_size, args.lr, args.seed))
    start = time.perf_counter()
    processes = _processes(args)
    if processes == 1:
        report = train_mnist(job, progress=not args.no_progress)
    elif launcher.launched_by_torchrun():
        rank, report = launcher.run_in_environment_group(train_mnist, (job,), device)
        if rank:
            return None
    else:
        report = launcher.launch(train_mnist, (job,), processes,
                                 backend=launcher.backend_for(device), timeout=math.inf)[0]
    return _result(args, report, time.perf_counter() - start)


def _result(args: argparse.Namespace, report: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The JSON line's fields, from the settings and a worker's report (one process or many)."""
    epochs = report["epochs"]
    train_seconds = sum(epoch["seconds"] for epoch in epochs)
    communication = sum(epoch["communication_seconds"] for epoch in epochs)
    return {
        "dataset": report["dataset"],
        "valid_accuracy": epochs[-1]["valid_accuracy"],
        "test_accuracy": report["test_accuracy"],
        "valid_loss": epochs[-1]["valid_loss"],
        "test_loss": report["test_loss"],
        "train_loss": epochs[-1]["train_loss"],
        "seconds": round(seconds, 3),
        "train_seconds": round(train_seconds, 3),
        "epochs": len(epochs),
        "device": report["device"],
        "hidden": list(args.hidden),
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "train_images": report["train_images"],
        "valid_images": report["valid_images"],
        "test_images": report["test_images"],
        "valid_accuracy_per_epoch": [epoch["valid_accuracy"] for epoch in epochs],
        "processes": report["processes"],
        "epoch_seconds": [round(epoch["seconds"], 3) for epoch in epochs],
        "communication_share": round(communication / train_seconds, 4) if train_seconds else 0.0,
    }


def _processes(args: argparse.Namespace) -> int:
    """How many processes train: ``--processes``, else torchrun's world size, else 1."""
    if not launcher.launched_by_torchrun():
        return args.processes or 1
    world_size = int(os.environ["WORLD_SIZE"])
    if args.processes not in (None, world_size):
        raise ValueError(f"--processes must equal torchrun's world size {world_size}; "
                         f"got {args.processes}")
    return world_size


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, train, print one JSON line; return the exit status.

    Nothing ends in a traceback: a bad command line ends with status 2 before any data
    are read; a failure (missing or corrupt data, no memory, a diverging run, a worker
    that died) with one line on stderr and status 2; Ctrl-C with one line and status
    130; a closed stdout quietly with status 1.

    Examples:
        >>> main(["--lr", "nan"])
        Traceback (most recent call last):
            ...
        SystemExit: 2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if sys.stdout is None:  # started with stdout closed: nowhere to put the result
        return 1
    try:
        result = run(args)
        if result is None:  # a torchrun worker other than rank 0
            return 0
        _check_finite(result)
        print(json.dumps(result, allow_nan=False), flush=True)
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog}: interrupted\n")
    except BrokenPipeError:  # the reader of stdout went away: say nothing more
        _silence_stdout()
        return 1
    except (RuntimeError, OSError, ValueError, MemoryError, OverflowError) as error:
        parser.exit(2, f"{parser.prog}: error: {_one_line(error)}\n")
    return 0


def _one_line(error: BaseException) -> str:
    """The first line of ``error``'s message (the rest gives details), or its type's name."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
