"""python -m byhand.mnist: a short run prints one JSON line; bad arguments fail clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import byhand.mnist
from byhand.data import Dataset, data_root, datasets
from byhand.mnist import main

KEYS = {"test_accuracy", "seconds", "device", "epochs", "dataset", "hidden", "lr",
        "batch_size", "seed", "train_loss", "test_loss"}


def tiny_dataset(root=None, download=True) -> Dataset:
    """Ten classes, each a bright band of rows at its own height: learnable at once."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 10
    images = torch.randint(0, 40, (300, 28, 28), generator=gen)
    for row, label in enumerate(labels.tolist()):
        images[row, 2 * label + 4 : 2 * label + 7] += 200
    return Dataset("tiny", images[:200].to(torch.uint8), labels[:200],
                   images[200:].to(torch.uint8), labels[200:], tuple(str(d) for d in range(10)))


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(byhand.mnist.DATASETS, "mnist", tiny_dataset)


def run_main(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_short_run_prints_one_json_line(tiny, capsys):
    result = run_main(capsys, ["--epochs", "2", "--hidden", "32", "--lr", "0.1",
                               "--batch-size", "20", "--seed", "3", "--no-progress",
                               "--device", "cpu"])
    assert set(result) >= KEYS
    assert result["epochs"] == 2 and result["hidden"] == [32]
    assert result["batch_size"] == 20 and result["lr"] == 0.1 and result["seed"] == 3
    assert result["device"] == "cpu" and result["dataset"] == "tiny"
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["seconds"] > 0
    assert result["test_accuracy"] > 0.5


def test_two_hidden_layers_and_limit(tiny, capsys):
    result = run_main(capsys, ["--epochs", "1", "--hidden", "16", "8", "--limit", "50",
                               "--no-progress"])
    assert result["hidden"] == [16, 8]
    assert result["train_images"] + result["valid_images"] == 50 and result["test_images"] == 50


def test_progress_goes_to_stderr(tiny, capsys):
    assert main(["--epochs", "1", "--hidden", "8"]) == 0
    captured = capsys.readouterr()
    assert "training" in captured.err
    assert len(captured.out.strip().splitlines()) == 1


def test_same_seed_same_result(tiny, capsys):
    argv = ["--epochs", "1", "--hidden", "8", "--no-progress", "--seed", "5"]
    first, again = run_main(capsys, argv), run_main(capsys, argv)
    assert first["train_loss"] == again["train_loss"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "expected a positive integer; got 0"),
        (["--epochs", "two"], "expected a positive integer; got 'two'"),
        (["--hidden"], "expected at least one argument"),
        (["--hidden", "0"], "expected a positive integer"),
        (["--batch-size", "-4"], "expected a positive integer; got -4"),
        (["--lr", "0"], "expected a positive finite number"),
        (["--lr", "fast"], "expected a positive finite number; got 'fast'"),
        (["--lr", "inf"], "expected a positive finite number"),
        (["--lr", "nan"], "expected a positive finite number"),
        (["--seed", "-1"], "expected an integer from 0 to 2**64 - 1; got -1"),
        (["--seed", str(2**64)], f"expected an integer from 0 to 2**64 - 1; got {2**64}"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--dataset", "cifar"], "invalid choice: 'cifar'"),
        (["--limit", "0"], "expected a positive integer"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_largest_seed_is_accepted(tiny, capsys):
    result = run_main(capsys, ["--epochs", "1", "--hidden", "8", "--no-progress",
                               "--seed", str(2**64 - 1)])
    assert result["seed"] == 2**64 - 1


def test_run_leaves_the_global_rng_alone_and_does_not_depend_on_it(tiny, capsys):
    argv = ["--epochs", "1", "--hidden", "8", "--no-progress", "--seed", "5", "--device", "cpu"]
    results = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        results.append(run_main(capsys, argv))
        assert torch.equal(torch.get_rng_state(), before)
    assert results[0]["train_loss"] == results[1]["train_loss"]
    assert results[0]["valid_accuracy_per_epoch"] == results[1]["valid_accuracy_per_epoch"]
    assert results[0]["test_accuracy"] == results[1]["test_accuracy"]


def test_diverging_run_stops_with_a_clear_error_and_no_json(tiny, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--epochs", "2", "--hidden", "16", "--lr", "1e6", "--no-progress", "--device", "cpu"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line, = captured.err.splitlines()
    assert line.startswith("python -m byhand.mnist: error: training diverged: ")
    assert "test_loss = nan" in line and "try a smaller --lr (this run used 1000000.0)" in line


def test_non_finite_results_never_reach_the_json(tiny, monkeypatch, capsys):
    real_run = byhand.mnist.run

    def run_with_an_infinite_figure(args):
        return {**real_run(args), "valid_accuracy_per_epoch": [0.5, float("inf")]}

    monkeypatch.setattr(byhand.mnist, "run", run_with_an_infinite_figure)
    with pytest.raises(SystemExit) as exit_info:
        main(["--epochs", "1", "--hidden", "8", "--no-progress"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "valid_accuracy_per_epoch = [0.5, inf]" in captured.err


def test_unavailable_device_is_an_error(tiny, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cuda", "--no-progress"])
    assert exit_info.value.code == 2
    assert "'cuda' was requested but is not available" in capsys.readouterr().err


def test_unreadable_data_is_an_error(monkeypatch, capsys):
    def unreadable(root=None, download=True):
        raise PermissionError(13, "Permission denied", "/data/mnist")

    monkeypatch.setitem(byhand.mnist.DATASETS, "mnist", unreadable)
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-progress"])
    assert exit_info.value.code == 2
    assert "Permission denied: '/data/mnist'" in capsys.readouterr().err


def test_missing_data_is_an_error(monkeypatch, capsys):
    def missing(root=None, download=True):
        raise FileNotFoundError("load_mnist: missing train-images-idx3-ubyte.gz")

    monkeypatch.setitem(byhand.mnist.DATASETS, "mnist", missing)
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-progress"])
    assert exit_info.value.code == 2
    assert "missing train-images" in capsys.readouterr().err


def test_help_lists_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--hidden" in text and "default" in text


@pytest.mark.skipif(not (data_root() / "mnist" / "train-images-idx3-ubyte.gz").exists(),
                    reason="MNIST is not in $BYHAND_DATA (run `make data`)")
def test_module_runs_on_real_mnist():
    command = [sys.executable, "-m", "byhand.mnist", "--epochs", "3", "--hidden", "32",
               "--batch-size", "32", "--lr", "0.1", "--limit", "2000", "--no-progress",
               "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["dataset"] == "mnist" and result["epochs"] == 3
    assert result["test_accuracy"] > 0.6  # guessing gives 0.1; a short, noisy run, so a wide margin


# ------------------------------------------------- never a traceback: one line, non-zero


def _one_error_line(capsys, argv, code=2):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == code
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert captured.out == "" and "Traceback" not in captured.err
    return line


@pytest.mark.parametrize("option", ["--hidden", "--batch-size", "--epochs", "--limit"])
def test_sizes_past_any_machine_are_refused_in_one_line(capsys, option):
    line = _one_error_line(capsys, [option, str(2**63)])
    assert line == (f"python -m byhand.mnist: error: argument {option}: expected a positive "
                    f"integer up to 2147483647; got {2**63} (see --help)")


def test_a_network_too_wide_for_memory_is_one_line(tiny, capsys):
    line = _one_error_line(capsys, ["--hidden", "2147483647", "--no-progress", "--device", "cpu"])
    assert line.startswith("python -m byhand.mnist: error: ") and "allocate" in line


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(byhand.mnist, "run", interrupted)
    assert _one_error_line(capsys, ["--no-progress"], code=130) == "python -m byhand.mnist: interrupted"


def test_missing_data_without_a_network_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.setattr(datasets, "MNIST_MIRRORS", ((tmp_path / "offline").as_uri() + "/",))
    line = _one_error_line(capsys, ["--data", str(tmp_path / "data"), "--no-progress"])
    assert line.startswith("python -m byhand.mnist: error: load_mnist: could not download "
                           "train-images-idx3-ubyte.gz") and "make data" in line
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_in_the_data_folder_is_one_line_and_no_hang(tmp_path, capsys):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in datasets.MNIST_FILES:
        os.mkfifo(folder / name)
    line = _one_error_line(capsys, ["--data", str(tmp_path), "--no-progress"])
    assert line == (f"python -m byhand.mnist: error: {folder / 'train-images-idx3-ubyte.gz'}: "
                    "not a regular file (a FIFO)")


def test_a_closed_stdout_is_quiet_and_non_zero(tmp_path):
    done = subprocess.run(f"exec {sys.executable} -m byhand.mnist --limit 100 --no-progress >&-",
                          shell=True, capture_output=False, stderr=subprocess.PIPE, text=True,
                          timeout=120)
    assert done.returncode == 1 and done.stderr == ""


@pytest.mark.skipif(not (data_root() / "mnist" / "train-images-idx3-ubyte.gz").exists(),
                    reason="MNIST is not in $BYHAND_DATA (run `make data`)")
def test_a_reader_that_goes_away_is_quiet_and_non_zero():
    command = [sys.executable, "-m", "byhand.mnist", "--epochs", "1", "--hidden", "8",
               "--limit", "300", "--no-progress", "--device", "cpu"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    assert child.wait(timeout=300) == 1
    assert child.stderr.read() == ""
