"""Pick the fastest available device (CUDA, then Apple's MPS, then the CPU), and describe the machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

__all__ = ["cpu_model", "describe_machine", "load_average", "pick_device", "synchronize"]



def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(preference: str = "auto") -> torch.device:
    """Return ``cuda`` if available, else ``mps``, else ``cpu`` (for ``"auto"``).

    An explicit ``"cuda"`` or ``"mps"`` that is not available raises instead of
    silently falling back, so a reader who asked for the GPU knows they did not get it.

    Examples:
        >>> pick_device("cpu")
        device(type='cpu')
        >>> pick_device().type in ("cuda", "mps", "cpu")
        True
        >>> pick_device("tpu")
        Traceback (most recent call last):
            ...
        ValueError: pick_device: preference must be one of 'auto', 'cpu', 'cuda' or 'mps'; got 'tpu'
    """
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}
    if preference not in available:
        raise ValueError(
            f"pick_device: preference must be one of 'auto', 'cpu', 'cuda' or 'mps'; "
            f"got {preference!r}"
        )
    if not available[preference]:
        raise RuntimeError(f"pick_device: {preference!r} was requested but is not available here")
    return torch.device(preference)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device``, so a wall-clock reading covers it.

    Examples:
        >>> device = pick_device()
        >>> x = torch.ones(1000, device=device) * 2
        >>> synchronize(device)
        >>> float(x.sum())
        2000.0
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else ``platform.processor()``.

    Examples:
        >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
        True
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name":
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def describe_machine(device: torch.device | str | None = None) -> dict[str, object]:
    """The machine a measurement ran on, as a JSON-ready dict.

    Keys: ``cpu`` (model name), ``cpu_count`` (logical cores the OS reports),
    ``torch_threads``, ``torch`` (version), ``python``, ``platform``, ``device`` (the one
    used, or :func:`pick_device`'s choice when ``device`` is None), ``gpu`` (the CUDA
    device's name, or None) and ``load_average`` (the 1-minute load average, or None: a
    load above the core count means other processes competed for the CPU).

    Examples:
        >>> machine = describe_machine("cpu")
        >>> machine["device"], machine["torch"] == torch.__version__
        ('cpu', True)
        >>> sorted(machine)
        ['cpu', 'cpu_count', 'device', 'gpu', 'load_average', 'platform', 'python', 'torch', 'torch_threads']
    """
    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(pick_device() if device is None else device),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "load_average": load_average(),
    }


def load_average() -> float | None:
    """The 1-minute load average of the machine, or None where the OS does not report it.

    Examples:
        >>> load_average() is None or load_average() >= 0
        True
    """
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
