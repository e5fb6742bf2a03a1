"""Pick the fastest available device: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["DeviceName", "pick_device", "synchronize"]

DeviceName = Literal["auto", "cpu", "cuda", "mps"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(preference: str = "auto") -> torch.device:
    """Return ``cuda`` if available, else ``mps``, else ``cpu`` (for ``"auto"``).

    An explicit ``"cuda"`` or ``"mps"`` that is not available raises instead of
    silently falling back, so a reader who asked for the GPU knows they did not get it.
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
    """Wait for the work queued on ``device``, so a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
