"""The training benchmarks print one JSON line of sane figures (its structure, never a speed)."""

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


def assert_summary(summary: dict) -> None:
    """A median/IQR summary of per-step seconds: ordered quartiles, positive, consistent."""
    assert set(summary) == {"median_s", "q25_s", "q75_s", "iqr_s", "min_s", "blocks"}
    assert 0 < summary["min_s"] <= summary["q25_s"] <= summary["median_s"] <= summary["q75_s"]
    assert summary["iqr_s"] >= 0 and summary["blocks"] >= 1


def test_train_step_quick():
    result = run_benchmark("train_step.py")
    assert result["benchmark"] == "train_step" and result["quick"] is True
    for side in ("manual", "autograd"):
        assert_summary(result[side]["latency"])
        assert_summary(result[side]["throughput"])
    ratio = result["manual"]["throughput"]["median_s"] / result["autograd"]["throughput"]["median_s"]
    assert result["manual_over_autograd"] == pytest.approx(ratio)
    assert result["sizes"][0] == 784 and result["sizes"][-1] == 10
    assert result["back_to_back"] >= 1 and result["rounds"] >= 1
    assert {"load_average_before", "load_average_after"} <= set(result)
    assert not [key for key in result if "goal" in key or "meets" in key]
    assert set(result["machine"]) >= MACHINE_KEYS


@pytest.mark.skipif(not (data_root() / "mnist" / "train-images-idx3-ubyte.gz").exists(),
                    reason="MNIST is not in $BYHAND_DATA (run `make data`)")
def test_time_to_accuracy_quick():
    result = run_benchmark("time_to_accuracy.py")
    assert result["benchmark"] == "time_to_accuracy" and result["quick"] is True
    assert result["train_images"] + result["valid_images"] == 2000
    for side in ("manual", "autograd"):
        run = result[side]
        assert run["epochs"] == 1 and len(run["valid_accuracy_per_epoch"]) == 1
        assert run["reached"] == (run["valid_accuracy"] >= result["target_valid_accuracy"])
        assert 0.1 < run["valid_accuracy"] <= 1 and 0.1 < run["test_accuracy"] <= 1
        assert 0 < run["train_seconds"] <= run["seconds"]
    # the same weights and batches: the two sides classify the same digits the same way
    assert abs(result["manual"]["test_accuracy"] - result["autograd"]["test_accuracy"]) < 2e-3
    assert set(result["machine"]) >= MACHINE_KEYS
