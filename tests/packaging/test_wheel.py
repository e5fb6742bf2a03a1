"""The package as a reader installs it: a wheel in a fresh virtual environment, and a
chapter notebook copied alone to an empty folder and executed there."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "chapters" / "01_what_ce_and_nll_compute.ipynb"

RUN_NOTEBOOK = """
import sys, nbformat, nbclient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                        resources={"metadata": {"path": sys.argv[2]}}).execute()
print("executed", len(nb.cells), "cells")
"""


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with only the byhand wheel (and a kernel to run a notebook) installed."""
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", work / "dist", ROOT)
    (wheel,) = (work / "dist").glob("byhand-*.whl")
    venv.EnvBuilder(with_pip=True, clear=True).create(work / "venv")
    python = work / "venv" / "bin" / "python"
    # The constraints keep the dependencies at the book's pins (torch 2.13.0 CPU).
    _run(python, "-m", "pip", "install", "--quiet", "-c", ROOT / "requirements.txt",
         wheel, "nbclient", "nbformat", "ipykernel")
    _run(python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3")
    return python


def test_installed_package_is_the_wheel_not_the_checkout(fresh_env: Path, tmp_path: Path) -> None:
    out = _run(fresh_env, "-c", "import byhand, sys; print(byhand.__file__); print(sys.prefix)",
               cwd=tmp_path)
    module_path, prefix = out.split()
    assert module_path.startswith(prefix) and "site-packages" in module_path
    assert not module_path.startswith(str(ROOT / "src"))


def test_drop_in_works_from_the_wheel(fresh_env: Path, tmp_path: Path) -> None:
    code = (
        "import torch, torch.nn.functional as F, byhand\n"
        "x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)\n"
        "y = torch.tensor([0, 4, 2, 1])\n"
        "byhand.cross_entropy(x, y, label_smoothing=0.1).backward()\n"
        "g = x.grad.clone(); x.grad = None\n"
        "F.cross_entropy(x, y, label_smoothing=0.1).backward()\n"
        "assert torch.allclose(g, x.grad)\n"
        "print('ok')\n"
    )
    assert _run(fresh_env, "-c", code, cwd=tmp_path).strip() == "ok"


def test_the_compiled_loop_builds_from_the_wheel(fresh_env: Path, tmp_path: Path) -> None:
    """The wheel ships native_logsumexp.c, so an installed byhand compiles its loop where
    the checkout's does (here: x86-64 with a C compiler)."""
    code = ("import torch, byhand.native_logsumexp as n, pathlib\n"
            "print(pathlib.Path(n.__file__).with_name('native_logsumexp.c').is_file(),"
            " n.available(torch.bfloat16))\n")
    builds = (sys.platform != "win32" and shutil.which("cc") is not None
              and platform.machine().lower() in ("x86_64", "amd64"))
    expected = f"True {builds}"
    assert _run(fresh_env, "-c", code, cwd=tmp_path).strip() == expected


def test_a_chapter_copied_alone_runs(fresh_env: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(CHAPTER, alone / CHAPTER.name)
    out = _run(fresh_env, "-c", RUN_NOTEBOOK, alone / CHAPTER.name, alone, cwd=alone)
    assert out.startswith("executed")
