"""float16 and bfloat16: byhand's error against float64 is no worse than PyTorch's.

The figures come from ``benchmarks/half_precision.py`` itself (its ``measure`` on a
small seeded problem), so the test checks exactly what the benchmark reports.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "half_precision.py"
SLACK = {torch.float16: 1e-6, torch.bfloat16: 1e-5}  # far below one unit in the last place


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("half_precision", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(("n", "c", "scale", "seed"), [(128, 10, 3.0, 0), (64, 300, 6.0, 1)])
def test_our_half_precision_error_is_no_worse_than_pytorchs(dtype, n, c, scale, seed) -> None:
    rows = _benchmark().measure(dtype, n, c, scale, seed)
    assert {(r["function"], r["pass"]) for r in rows} == {
        (f, p) for f in ("softmax", "log_softmax", "logsumexp", "cross_entropy")
        for p in ("forward", "backward")}
    for row in rows:
        for stat in ("max_abs", "mean_abs"):
            ours, theirs = row[f"byhand_{stat}"], row[f"pytorch_{stat}"]
            assert ours <= theirs * 1.05 + SLACK[dtype], (row["function"], row["pass"], stat,
                                                          ours, theirs)


def test_script_prints_one_json_line_with_the_machine() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["benchmark"] == "half_precision" and len(report["results"]) == 16
    assert {"cpu", "torch", "device"} <= set(report["machine"])


@pytest.mark.parametrize("n", [65_519, 65_520])
def test_float16_mean_divides_by_a_count_rounded_to_float16(n: int) -> None:
    """PyTorch's float16 ``mean`` divides by N rounded to float16: infinity from 65,520 on.

    Every byhand path without ignored positions (the loss, its backward, the fused
    forward+backward) must then give PyTorch's nan loss and all-zero gradient, and agree
    with it just below the edge.
    """
    import byhand
    from byhand import losses

    gen = torch.Generator().manual_seed(16)
    x = torch.randn(n, 10, generator=gen).half()
    y = torch.randint(0, 10, (n,), generator=gen)
    leaf = x.clone().requires_grad_(True)
    theirs = torch.nn.functional.cross_entropy(leaf, y)
    theirs.backward()
    one = torch.tensor(1.0, dtype=torch.float16)
    fused_loss, fused_grad = losses.cross_entropy_forward_backward(x, y)
    for loss in (losses.cross_entropy(x, y), fused_loss):
        assert torch.equal(loss.isnan(), theirs.detach().isnan())
        assert torch.equal(loss.isinf(), theirs.detach().isinf())
    for grad in (byhand.cross_entropy_backward(one, x, y), fused_grad):
        assert bool((grad == 0).all()) == bool((leaf.grad == 0).all())
