"""Median time of one training step, hand-written backward against autograd.

A step is the forward pass, the loss and its gradient, the backward pass and the
SGD update, for the default MLP of ``python -m byhand.mnist`` on one minibatch. The
manual model (``byhand.train.train_step``) and its autograd twin (``nn.Linear``,
``F.cross_entropy``, ``loss.backward()``, ``torch.optim.SGD``) start from the same
weights, see the same batch in the same dtype, are warmed up, and are timed in
alternation many times. Prints one JSON line; ``manual_over_autograd`` below 1 means
the hand-written step is the faster one.

    python benchmarks/train_step.py [--device auto] [--quick]
"""

from __future__ import annotations

import argparse
import json

import torch

from byhand import pick_device
from byhand.device import describe_machine
from byhand.train import DEFAULT_BATCH_SIZE, DEFAULT_HIDDEN, step_timings

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--hidden", type=int, nargs="+", default=list(DEFAULT_HIDDEN))
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="a few repeats: a smoke run")
    args = parser.parse_args()
    repeats, warmup = (5, 2) if args.quick else (args.repeats, 30)
    device = pick_device(args.device)
    sizes = (784, *args.hidden, 10)
    timings = step_timings(sizes, args.batch_size, device, DTYPES[args.dtype],
                           repeats=repeats, warmup=warmup)
    print(json.dumps({
        "benchmark": "train_step",
        **timings,
        "sizes": list(sizes),
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "repeats": repeats,
        "warmup": warmup,
        "quick": args.quick,
        "machine": describe_machine(device),
    }))


if __name__ == "__main__":
    main()
