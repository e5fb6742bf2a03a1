"""One training step, hand-written backward against autograd: latency and throughput.

A step is the forward pass, the loss and its gradient, the backward pass and the
SGD update, for the default MLP of ``python -m byhand.mnist`` on one minibatch. The
manual model (``byhand.train.train_step``) and its autograd twin (``nn.Linear``,
``F.cross_entropy``, ``loss.backward()``, ``torch.optim.SGD``) start from the same
weights and see the same batch in the same dtype. ``byhand.train.step_timings`` times
them in alternation with ``torch.utils.benchmark`` (``Timer.blocked_autorange``,
which calibrates each block by duration and synchronises the accelerator), as
per-step latency (one step, one synchronisation) and as throughput (``--back-to-back``
steps, one synchronisation), and reports the median and interquartile range of each
with the load average before and after. Prints one JSON line; the reader judges.
``--threads 1`` gives steadier CPU times on a machine shared with other work.

    python benchmarks/train_step.py [--device auto] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import json

import torch

from byhand import pick_device
from byhand.device import describe_machine
from byhand.timing import step_timings
from byhand.train import DEFAULT_BATCH_SIZE, DEFAULT_HIDDEN

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--hidden", type=int, nargs="+", default=list(DEFAULT_HIDDEN))
    parser.add_argument("--rounds", type=int, default=10,
                        help="interleaved rounds; each times both sides, both ways")
    parser.add_argument("--min-run-time", type=float, default=0.2,
                        help="seconds per blocked_autorange")
    parser.add_argument("--back-to-back", type=int, default=20,
                        help="steps between two synchronisations for the throughput figure")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for the CPU (default: torch's choice)")
    parser.add_argument("--quick", action="store_true",
                        help="two short rounds of a 784-64-10 step on 32 rows: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.batch_size, args.rounds, args.min_run_time = [64], 32, 2, 0.01
        args.back_to_back = 5
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    sizes = (784, *args.hidden, 10)
    timings = step_timings(sizes, args.batch_size, device, DTYPES[args.dtype],
                           rounds=args.rounds, min_run_time=args.min_run_time,
                           back_to_back=args.back_to_back)
    print(json.dumps({
        "benchmark": "train_step",
        **timings,
        "sizes": list(sizes),
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "rounds": args.rounds,
        "min_run_time_s": args.min_run_time,
        "back_to_back": args.back_to_back,
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "machine": describe_machine(device),
    }))


if __name__ == "__main__":
    main()
