"""Describe the machine a benchmark ran on, so its JSON line can be read later.

The benchmarks are run as scripts (``python benchmarks/NAME.py``); Python puts the
script's folder on ``sys.path``, so they import this helper as
``from machine import describe``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

__all__ = ["cpu_model", "describe"]


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else ``platform.processor()``."""
    cpuinfo = Path("/proc/cpuinfo")
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe(device: torch.device | str | None = None) -> dict[str, object]:
    """Return the machine as a JSON-ready dict.

    Keys: ``cpu`` (model name), ``cpu_count`` (logical cores the OS reports),
    ``torch_threads`` (``torch.get_num_threads()``), ``torch`` (version),
    ``python``, ``platform``, ``device`` (the one the benchmark used, or the best
    available when ``device`` is None), ``gpu`` (the CUDA device's name, or None) and
    ``load_average`` (the 1-minute load average when the OS reports one, else None: a
    load above the core count means other processes competed for the CPU).
    """
    cuda = torch.cuda.is_available()
    if device is None:
        device = "cuda" if cuda else "cpu"
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "load_average": _load_average(),
    }


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


if __name__ == "__main__":
    import json

    print(json.dumps(describe()))
