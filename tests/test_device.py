"""pick_device: CUDA, then MPS, then the CPU; explicit requests never fall back silently."""

from __future__ import annotations

import pytest
import torch

import byhand.device
from byhand import pick_device


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(byhand.device, "_mps_available", lambda: False)


def test_auto_is_cpu_without_an_accelerator(no_accelerator):
    assert pick_device() == torch.device("cpu")
    assert pick_device("auto") == torch.device("cpu")


def test_auto_here_matches_what_torch_reports():
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if byhand.device._mps_available() else "cpu")
    assert pick_device("auto").type == expected


def test_auto_prefers_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(byhand.device, "_mps_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda") == torch.device("cuda")


def test_auto_takes_mps_when_there_is_no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")
    assert pick_device("mps") == torch.device("mps")


def test_cpu_is_always_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_an_unavailable_accelerator_raises(no_accelerator, name):
    with pytest.raises(RuntimeError, match=f"'{name}' was requested but is not available"):
        pick_device(name)


@pytest.mark.parametrize("name", ["gpu", "CUDA", "", "tpu"])
def test_a_bad_preference_raises(name):
    with pytest.raises(ValueError, match="must be one of 'auto', 'cpu', 'cuda' or 'mps'"):
        pick_device(name)
