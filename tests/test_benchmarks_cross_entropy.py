"""benchmarks/cross_entropy.py prints one JSON line of sane figures (its structure, never a speed)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from byhand.device import describe_machine

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

CASE_KEYS = {
    "N", "C", "dtype", "input_bytes", "byhand", "autograd", "byhand_over_autograd",
    "load_average_before", "load_average_after", "byhand_peak_bytes",
    "autograd_peak_bytes", "memory_ratio", "grad_max_abs_diff", "loss_abs_diff",
}
SUMMARY_KEYS = {"median_s", "q25_s", "q75_s", "iqr_s", "min_s", "blocks"}
MACHINE_KEYS = {
    "cpu", "cpu_count", "torch_threads", "torch", "python", "platform", "device", "gpu",
    "load_average",
}


@pytest.fixture(scope="module")
def report() -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cross_entropy.py"), "--quick", "--device", "cpu",
         "--threads", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


def assert_summary(summary: dict) -> None:
    """A median/IQR summary of per-call seconds: positive, ordered quartiles, consistent IQR."""
    assert set(summary) == SUMMARY_KEYS
    assert 0 < summary["min_s"] <= summary["q25_s"] <= summary["median_s"] <= summary["q75_s"]
    assert summary["iqr_s"] == pytest.approx(summary["q75_s"] - summary["q25_s"])
    assert summary["blocks"] >= 1


def test_report_describes_the_run_and_the_machine(report: dict) -> None:
    assert report["benchmark"] == "cross_entropy"
    assert report["quick"] is True and report["device"] == "cpu"
    assert (report["rounds"], report["min_run_time_s"], report["back_to_back"]) == (2, 0.01, 5)
    assert "profiler" in report["memory_method"]
    assert report["machine"].keys() >= MACHINE_KEYS
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch_threads"] == 1


def test_no_verdicts_in_the_report(report: dict) -> None:
    def keys(obj: object) -> list[str]:
        if isinstance(obj, dict):
            return [k for key, value in obj.items() for k in (key, *keys(value))]
        if isinstance(obj, list):
            return [k for value in obj for k in keys(value)]
        return []

    verdicts = ("goal", "met", "meets", "pass", "passed", "ok")
    assert not [key for key in keys(report) if set(key.split("_")) & set(verdicts)]


def test_cases_hold_sane_timings_and_memory(report: dict) -> None:
    cases = report["cases"]
    assert [(case["N"], case["C"]) for case in cases] == [(128, 10), (512, 10), (64, 32768)]
    for case in cases:
        assert case.keys() >= CASE_KEYS
        assert case["input_bytes"] == case["N"] * case["C"] * 4
        for side in ("byhand", "autograd"):
            assert set(case[side]) == {"latency", "throughput"}
            assert_summary(case[side]["latency"])
            assert_summary(case[side]["throughput"])
        ratio = case["byhand"]["throughput"]["median_s"] / case["autograd"]["throughput"]["median_s"]
        assert case["byhand_over_autograd"] == pytest.approx(ratio)
        for key in ("load_average_before", "load_average_after"):
            assert case[key] is None or case[key] >= 0
        # Both sides at least hold their N x C float32 gradient.
        assert case["byhand_peak_bytes"] >= case["input_bytes"]
        assert case["autograd_peak_bytes"] >= case["input_bytes"]
        assert case["memory_ratio"] == pytest.approx(
            case["byhand_peak_bytes"] / case["autograd_peak_bytes"])
        assert math.isfinite(case["memory_ratio"]) and case["memory_ratio"] > 0
        assert case["ops_per_call"]["byhand"]["total"] >= 1
        assert case["forward_ratio"] == pytest.approx(
            case["forward_no_grad"]["byhand"]["throughput"]["median_s"]
            / case["forward_no_grad"]["torch"]["throughput"]["median_s"])
        assert case["grad_max_abs_diff"] < 1e-5 and case["loss_abs_diff"] < 1e-4


def test_machine_describes_this_machine() -> None:
    info = describe_machine()
    assert info.keys() >= MACHINE_KEYS
    assert isinstance(info["cpu"], str) and info["cpu"]
    assert isinstance(info["torch_threads"], int) and info["torch_threads"] >= 1
    json.dumps(info)
