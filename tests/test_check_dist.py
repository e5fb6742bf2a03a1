"""tools/check_dist.py: a wheel or sdist with a stray or missing file is refused, by name."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import check_dist  # noqa: E402

GOOD_WHEEL = ["byhand/__init__.py", "byhand/py.typed", "byhand/figures/style.py",
              "byhand/native_logsumexp.c",
              "byhand-1.0.dist-info/METADATA", "byhand-1.0.dist-info/WHEEL",
              "byhand-1.0.dist-info/RECORD", "byhand-1.0.dist-info/licenses/LICENSE"]
GOOD_SDIST = ["pyproject.toml", "README.md", "LICENSE", "PKG-INFO", "setup.cfg",
              "src/byhand/__init__.py", "src/byhand/py.typed", "src/byhand/native_logsumexp.c"]


def _wheel(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "")
    return path


def _sdist(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            info = tarfile.TarInfo(f"byhand-1.0/{name}")
            archive.addfile(info, io.BytesIO(b""))
    return path


def test_a_clean_wheel_and_sdist_pass(tmp_path: Path) -> None:
    assert check_dist.wheel_problems(_wheel(tmp_path / "b.whl", GOOD_WHEEL)) == []
    assert check_dist.sdist_problems(_sdist(tmp_path / "b.tar.gz", GOOD_SDIST)) == []


def test_stray_and_missing_files_are_named(tmp_path: Path) -> None:
    names = [n for n in GOOD_WHEEL if not n.endswith("LICENSE")] + ["tests/test_x.py"]
    problems = check_dist.wheel_problems(_wheel(tmp_path / "b.whl", names))
    assert "b.whl: unexpected tests/test_x.py" in problems
    assert "b.whl: missing the license file" in problems
    problems = check_dist.sdist_problems(_sdist(tmp_path / "b.tar.gz", [*GOOD_SDIST[1:], ".data/x"]))
    assert problems == ["b.tar.gz: unexpected .data/x", "b.tar.gz: missing pyproject.toml"]


def test_the_c_source_must_ship_and_no_other_c_file(tmp_path: Path) -> None:
    """The wheel carries the C loop the package compiles at run time; nothing else in C."""
    names = [n for n in GOOD_WHEEL if not n.endswith(".c")] + ["byhand/other.c"]
    problems = check_dist.wheel_problems(_wheel(tmp_path / "b.whl", names))
    assert problems == ["b.whl: unexpected byhand/other.c", "b.whl: missing byhand/native_logsumexp.c"]
    names = [n for n in GOOD_SDIST if not n.endswith(".c")]
    problems = check_dist.sdist_problems(_sdist(tmp_path / "b.tar.gz", names))
    assert problems == ["b.tar.gz: missing src/byhand/native_logsumexp.c"]


def test_the_command_exits_non_zero_on_a_bad_wheel(tmp_path: Path) -> None:
    bad = _wheel(tmp_path / "b.whl", [*GOOD_WHEEL, "chapters/01.ipynb"])
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "check_dist.py"), str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "unexpected chapters/01.ipynb" in result.stderr
