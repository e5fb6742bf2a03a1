"""The training benchmarks run and print one JSON line with their keys (no speed asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from byhand.data import data_root

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MACHINE_KEYS = {"cpu", "torch", "device"}


def run_benchmark(name: str) -> dict:
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), "--quick"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_train_step_quick():
    result = run_benchmark("train_step.py")
    assert set(result) >= {"manual_s", "autograd_s", "manual_over_autograd", "sizes",
                           "batch_size", "dtype", "machine"}
    assert result["quick"] is True
    assert set(result["machine"]) >= MACHINE_KEYS


@pytest.mark.skipif(not (data_root() / "mnist" / "train-images-idx3-ubyte.gz").exists(),
                    reason="MNIST is not in $BYHAND_DATA (run `make data`)")
def test_time_to_accuracy_quick():
    result = run_benchmark("time_to_accuracy.py")
    assert set(result) >= {"target", "reached", "epochs", "seconds", "train_seconds",
                           "test_accuracy", "hidden", "batch_size", "lr", "machine"}
    assert result["epochs"] == 1 and result["train_images"] == 2000
    assert set(result["machine"]) >= MACHINE_KEYS
