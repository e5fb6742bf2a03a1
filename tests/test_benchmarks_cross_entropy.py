"""Smoke test of benchmarks/cross_entropy.py: it runs and prints one JSON line with its figures.

Only the shape of the report is checked, never the speed, which depends on the machine.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from byhand.device import describe_machine

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

CASE_KEYS = {
    "N", "C", "dtype", "input_bytes", "inner", "repeats", "byhand_s", "autograd_s",
    "byhand_s_iqr", "autograd_s_iqr", "time_ratio", "byhand_peak_bytes",
    "autograd_peak_bytes", "memory_ratio", "grad_max_abs_diff", "loss_abs_diff",
    "goal_time_ratio", "goal_memory_ratio", "goal_met",
}
MACHINE_KEYS = {
    "cpu", "cpu_count", "torch_threads", "torch", "python", "platform", "device", "gpu",
    "load_average",
}


def test_quick_run_prints_one_json_line_with_the_figures() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cross_entropy.py"), "--quick", "--device", "cpu",
         "--repeats", "3"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout
    report = json.loads(lines[0])

    assert report["benchmark"] == "cross_entropy"
    assert report["quick"] is True
    assert report["device"] == "cpu"
    assert "profiler" in report["memory_method"]
    assert isinstance(report["all_goals_met"], bool)
    assert report["machine"].keys() >= MACHINE_KEYS
    assert report["machine"]["device"] == "cpu"

    cases = report["cases"]
    assert [(c["N"], c["C"]) for c in cases] == [(512, 10), (64, 32768)]
    for case in cases:
        assert case.keys() >= CASE_KEYS
        assert case["repeats"] == 3 and case["inner"] >= 1
        for key in ("byhand_s", "autograd_s", "time_ratio"):
            assert math.isfinite(case[key]) and case[key] > 0
        # Both sides at least hold their N x C float32 gradient.
        assert case["byhand_peak_bytes"] >= case["input_bytes"]
        assert case["autograd_peak_bytes"] >= case["input_bytes"]
        assert case["grad_max_abs_diff"] < 1e-5


def test_machine_describes_this_machine() -> None:
    info = describe_machine()
    assert info.keys() >= MACHINE_KEYS
    assert isinstance(info["cpu"], str) and info["cpu"]
    assert isinstance(info["torch_threads"], int) and info["torch_threads"] >= 1
    json.dumps(info)
