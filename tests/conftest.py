"""Shared test configuration: deterministic hypothesis runs, seeded torch, Agg backend."""

import os

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from hypothesis import settings

matplotlib.use("Agg")

# byhand.kernels runs its Triton kernel on CPU tensors only in Triton's interpreter, which
# must be switched on before anything imports triton (torch._dynamo does, for one). Without
# CUDA, switch it on here, before any test module is imported; with CUDA the kernels compile.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

settings.register_profile("book", derandomize=True, deadline=None, max_examples=150,
                          print_blob=True)
settings.load_profile("book")


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _close_figures() -> None:
    """Every figure a test draws is closed after it, so none piles up in memory."""
    yield
    plt.close("all")
