"""Data parallelism by hand: two gloo processes on 127.0.0.1 against one process.

Every multi-process check runs inside one launch (spawning costs seconds on a busy
machine) and is bounded by a timeout; the workers are the module-level functions below,
which the ``spawn`` start method imports in each process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import byhand
import byhand.data
import byhand.distributed
import byhand.train
from byhand.data_parallel import ddp_gradients, trajectory
from byhand.distributed import (
    all_reduce_gradients,
    counted_weight,
    flat_gradients,
    flat_parameters,
    global_cross_entropy,
    naive_cross_entropy,
    ring_all_reduce_bytes,
    ring_all_reduce_seconds,
    shard,
)
from byhand.launcher import WorkerError, backend_for, free_port, launch
from byhand.losses import cross_entropy_forward_backward
from byhand.mnist import build_parser, main, run
from byhand.train import Tensors, backward, fit, mlp

ROOT = Path(__file__).resolve().parents[1]
C = 5
IGNORE = -100

# name: (rows, options, do the ranks count the same total weight?)
CASES: dict[str, tuple[int, dict, bool]] = {
    "plain": (8, {}, True),
    "plain, uneven last batch": (7, {}, False),
    "ignore_index, equal counts": (8, {"ignore": [1, 5]}, True),
    "ignore_index, unequal counts": (8, {"ignore": [4, 5, 6]}, False),
    "weights": (8, {"weight": True}, False),
    "label smoothing": (8, {"label_smoothing": 0.2}, True),
    "probability targets": (8, {"prob": True}, True),
    "probability targets, uneven": (7, {"prob": True}, False),
    "weights, ignore_index, smoothing, uneven": (
        7, {"weight": True, "ignore": [0, 5], "label_smoothing": 0.1}, False),
    "one row: rank 1 has none": (1, {}, False),
}


def _problem(rows: int, options: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The same seeded batch on every rank: inputs of a 6-4-C network, targets, options."""
    gen = torch.Generator().manual_seed(rows * 31 + len(options))
    x = torch.randn(rows, 6, generator=gen, dtype=torch.float64)
    if options.get("prob"):
        target = torch.rand(rows, C, generator=gen, dtype=torch.float64).softmax(1)
    else:
        target = torch.randint(0, C, (rows,), generator=gen)
        target[options.get("ignore", [])] = IGNORE
    kwargs = {"label_smoothing": options.get("label_smoothing", 0.0), "ignore_index": IGNORE}
    if options.get("weight"):
        kwargs["weight"] = torch.rand(C, generator=gen, dtype=torch.float64) + 0.5
    return x, target, kwargs


def _max_abs(difference: torch.Tensor) -> float:
    return float(difference.abs().max()) if difference.numel() else 0.0


def _parameter_gradient(model, x, target, loss, kwargs) -> torch.Tensor:
    _, grad = loss(model.forward(x), target, **kwargs)
    backward(model, grad)
    return flat_gradients(model)


def _gradient_cases() -> dict[str, dict[str, float]]:
    """Worker: for every case, this rank's differences to the one-process gradients."""
    rank, world = dist.get_rank(), dist.get_world_size()
    out = {}
    for name, (rows, options, _) in CASES.items():
        x, target, kwargs = _problem(rows, options)
        model = mlp([6, 4, C], dtype=torch.float64, seed=1)
        logits = model.forward(x)
        one_loss, one_grad = cross_entropy_forward_backward(logits, target, **kwargs)
        backward(model, one_grad)
        one_params = flat_gradients(model)
        mine = shard(torch.arange(rows), rank, world)
        ours_loss, ours_grad = global_cross_entropy(logits[mine], target[mine], **kwargs)
        ours_params = _parameter_gradient(model, x[mine], target[mine], global_cross_entropy,
                                          kwargs)
        all_reduce_gradients(model)
        result = {"loss": abs(float(ours_loss - one_loss)),
                  "logits": _max_abs(ours_grad - one_grad[mine]),
                  "parameters": _max_abs(flat_gradients(model) - one_params)}
        assert ours_params.shape == one_params.shape
        if rows >= world:  # a rank without rows has no mean of its own
            naive_loss, _ = naive_cross_entropy(logits[mine], target[mine], **kwargs)
            _parameter_gradient(model, x[mine], target[mine], naive_cross_entropy, kwargs)
            all_reduce_gradients(model)
            naive_params = flat_gradients(model)
            ddp = ddp_gradients(model, x[mine], target[mine], **kwargs)
            result |= {"naive_loss": abs(float(naive_loss - one_loss)),
                       "naive_parameters": _max_abs(naive_params - one_params),
                       "ddp_vs_naive": _max_abs(ddp - naive_params)}
        out[name] = result
    out["every target ignored"] = _all_ignored(rank, world)
    out["linear_cross_entropy with denominator"] = _linear_denominator(rank, world)
    return out


def _all_ignored(rank: int, world: int) -> dict[str, float]:
    """Every target on every rank ignored: NaN loss and zero gradients, as in one process."""
    x, target, kwargs = _problem(8, {"ignore": list(range(8))})
    logits = mlp([6, 4, C], dtype=torch.float64, seed=1).forward(x)
    one = logits.detach().requires_grad_(True)
    torch.nn.functional.cross_entropy(one, target, ignore_index=IGNORE).backward()
    mine = shard(torch.arange(8), rank, world)
    loss, grad = global_cross_entropy(logits[mine], target[mine], **kwargs)
    assert one.grad is not None
    return {"loss_is_nan": float(torch.isnan(loss)), "grad": _max_abs(grad),
            "torch_grad": _max_abs(one.grad)}


def _linear_denominator(rank: int, world: int) -> dict[str, float]:
    """byhand.linear_cross_entropy per rank with denominator= the global count, summed."""
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(7, 4, generator=gen, dtype=torch.float64).requires_grad_(True)
    y = torch.randint(0, 7, (9,), generator=gen)
    y[[0, 1, 2]] = IGNORE  # rank 0 counts fewer targets than rank 1
    one = byhand.linear_cross_entropy(a, w, y)
    (one_grad,) = torch.autograd.grad(one, [w])
    mine = shard(torch.arange(9), rank, world)
    count = counted_weight(a[mine].new_zeros(len(mine), 7), y[mine])
    dist.all_reduce(count)
    loss = byhand.linear_cross_entropy(a[mine], w, y[mine], denominator=count)
    (grad,) = torch.autograd.grad(loss, [w])
    naive = byhand.linear_cross_entropy(a[mine], w, y[mine]).detach() / world
    for t in (loss, grad, naive):
        dist.all_reduce(t)
    return {"loss": abs(float(loss - one)), "grad": _max_abs(grad - one_grad),
            "naive_loss": abs(float(naive - one))}


def _raises_on_rank_1() -> None:
    if dist.get_rank() == 1:
        raise ValueError("deliberate failure on rank 1")
    dist.all_reduce(torch.zeros(1))  # rank 0 waits for a partner that is gone


def _hangs_on_rank_1() -> int:
    if dist.get_rank() == 1:
        time.sleep(600)
    return dist.get_rank()


# -------------------------------------------------------------------------- in-process


def test_shards_in_rank_order_are_the_batch() -> None:
    rows = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    for world in (1, 2, 3, 4, 12):
        pieces = [shard(rows, rank, world) for rank in range(world)]
        assert torch.equal(torch.cat(pieces), rows)
        assert max(map(len, pieces)) - min(map(len, pieces)) <= 1
    with pytest.raises(ValueError, match="rank must be in"):
        shard(rows, 2, 2)


def test_counted_weight_is_the_mean_denominator() -> None:
    x, target, kwargs = _problem(7, {"weight": True, "ignore": [0, 5]})
    denominator = counted_weight(x[:, :C], target, kwargs["weight"], IGNORE)
    keep = target != IGNORE
    assert abs(float(denominator - kwargs["weight"][target[keep]].sum())) <= 1e-14
    x, target, _ = _problem(7, {"prob": True})
    assert float(counted_weight(torch.zeros(7, C, 3), torch.zeros(7, C, 3))) == 21.0


def test_ring_volume_and_time() -> None:
    assert ring_all_reduce_bytes(1000, 1) == 0
    assert ring_all_reduce_bytes(1000, 2) == 1000
    assert ring_all_reduce_bytes(800, 8) == pytest.approx(1400)
    # 2(P-1) steps of latency plus the volume over the bandwidth
    assert ring_all_reduce_seconds(800, 8, 100.0, 0.5) == pytest.approx(14 * 0.5 + 1400 / 100)
    with pytest.raises(ValueError, match="processes must be positive; got 0"):
        ring_all_reduce_bytes(1, 0)


def test_backend_follows_the_device() -> None:
    assert backend_for("cpu") == "gloo" and backend_for("cuda:1") == "nccl"
    with pytest.raises(ValueError, match="device must be 'cpu' \\(gloo\\) or 'cuda' \\(nccl\\); got 'meta'"):
        backend_for("meta")


def test_one_process_trajectory_is_fit() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 6, generator=gen, dtype=torch.float64), torch.randint(0, C, (50,), generator=gen)
    rows = trajectory(x, y, [6, 4, C], steps=8, batch_size=16, lr=0.1, seed=2)
    model = mlp([6, 4, C], dtype=torch.float64, seed=2)
    fit(model, Tensors(x, y, x, y, x, y), epochs=2, batch_size=16, lr=0.1, seed=2, progress=False)
    assert rows.shape == (9, 6 * 4 + 4 + 4 * C + C)
    assert torch.equal(rows[-1], flat_parameters(model))


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port < 65536


# ----------------------------------------------------------------------- two processes


@pytest.fixture(scope="module")
def two_ranks() -> list[dict[str, dict[str, float]]]:
    return launch(_gradient_cases, processes=2, timeout=90)


@pytest.mark.parametrize("name", list(CASES))
def test_global_mean_gives_the_one_process_gradient(two_ranks, name: str) -> None:
    for rank in two_ranks:
        figures = rank[name]
        assert figures["loss"] <= 1e-14
        assert figures["logits"] <= 1e-15
        assert figures["parameters"] <= 1e-14


def test_every_target_ignored_on_every_rank(two_ranks) -> None:
    for rank in two_ranks:
        figures = rank["every target ignored"]
        assert figures["loss_is_nan"] == 1.0  # 0/0, as PyTorch's mean of nothing
        assert figures["grad"] == 0.0 == figures["torch_grad"]


def test_linear_cross_entropy_with_denominator_sums_to_the_global_mean(two_ranks) -> None:
    for rank in two_ranks:
        figures = rank["linear_cross_entropy with denominator"]
        assert figures["loss"] <= 1e-14 and figures["grad"] <= 1e-14
        assert figures["naive_loss"] > 1e-3  # the average of the two local means


@pytest.mark.parametrize("name", [n for n, (rows, _, _) in CASES.items() if rows > 1])
def test_naive_average_differs_exactly_when_the_counts_differ(two_ranks, name: str) -> None:
    equal_counts = CASES[name][2]
    for rank in two_ranks:
        figures = rank[name]
        if equal_counts:
            assert figures["naive_loss"] <= 1e-14 and figures["naive_parameters"] <= 1e-14
        else:
            assert figures["naive_loss"] > 1e-3 and figures["naive_parameters"] > 1e-3
        # DistributedDataParallel with a mean loss averages exactly like the naive sum / P.
        assert figures["ddp_vs_naive"] <= 1e-14


def test_a_worker_that_raises_ends_the_run_with_its_message() -> None:
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"worker 1 of 2 failed: ValueError: deliberate"):
        launch(_raises_on_rank_1, processes=2, timeout=30)
    assert time.monotonic() - start < 30
    assert multiprocessing.active_children() == []


def test_a_worker_that_hangs_ends_the_run_at_the_timeout() -> None:
    start = time.monotonic()
    # Rank 0 finishes unless starting the processes alone took longer than the timeout.
    with pytest.raises(WorkerError, match=r"workers \[(0, )?1\] of 2 did not finish within 3 s"):
        launch(_hangs_on_rank_1, processes=2, timeout=3)
    assert 3 <= time.monotonic() - start < 20
    assert multiprocessing.active_children() == []


def test_launch_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="processes must be a positive integer; got 0"):
        launch(_hangs_on_rank_1, processes=0)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        launch(_hangs_on_rank_1, timeout=0)


# ------------------------------------------------------------------------------- CLI

CLI_ARGS = ["--limit", "2000", "--epochs", "1", "--hidden", "32", "--seed", "3", "--no-progress"]


def _cli(*prefix: str) -> dict:
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([*prefix, "-m", "byhand.mnist", *CLI_ARGS], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, "one JSON line, from rank 0 only"
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def one_process() -> dict:
    return run(build_parser().parse_args(CLI_ARGS))


def test_cli_two_processes_train_like_one(one_process: dict, capsys) -> None:
    assert main([*CLI_ARGS, "--processes", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    two = json.loads(lines[0])
    assert two["processes"] == 2 and one_process["processes"] == 1
    assert len(two["epoch_seconds"]) == 1 and 0 < two["communication_share"] < 1
    assert two["test_accuracy"] == pytest.approx(one_process["test_accuracy"], abs=1e-3)
    assert two["train_loss"] == pytest.approx(one_process["train_loss"], rel=1e-5)


def test_cli_under_torchrun(one_process: dict) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    two = _cli(torchrun, "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()))
    assert two["processes"] == 2
    assert two["train_loss"] == pytest.approx(one_process["train_loss"], rel=1e-5)


def test_cli_processes_must_match_torchrun(monkeypatch, capsys) -> None:
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        main([*CLI_ARGS, "--processes", "3"])
    assert exit_info.value.code == 2
    assert "--processes must equal torchrun's world size 2; got 3" in capsys.readouterr().err


DEPRECATED_ALIASES = [
    *[(byhand.distributed, name, "byhand.launcher") for name in (
        "launch", "in_sequence", "WorkerError", "backend_for", "free_port",
        "launched_by_torchrun", "init_from_environment", "run_in_environment_group",
        "DEFAULT_TIMEOUT")],
    *[(byhand.distributed, name, "byhand.data_parallel") for name in (
        "Problem", "TrainConfig", "compare_gradients", "ddp_gradients", "trajectory",
        "train_mnist", "fit", "EpochRecord")],
    (byhand.train, "step_timings", "byhand.timing"),
    (byhand.data, "prepare_from_pickle", "byhand.data.prepare"),
    (byhand.data, "main", "byhand.data.prepare"),
]


@pytest.mark.parametrize(("module", "name", "home"), DEPRECATED_ALIASES,
                         ids=[f"{m.__name__}.{n}" for m, n, _ in DEPRECATED_ALIASES])
def test_each_deprecated_alias_warns_and_names_its_new_home(module, name, home) -> None:
    with pytest.warns(DeprecationWarning, match=home.replace(".", r"\.")):
        assert getattr(module, name) is not None
