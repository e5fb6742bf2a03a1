"""House rules every chapter notebook keeps; nbval (``make nbval``) executes them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return {entry["file"] for part in toc["parts"] for entry in part["chapters"]}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _markdown(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "markdown")


def test_every_chapter_is_in_the_table_of_contents_and_back() -> None:
    chapters = {f"chapters/{p.stem}" for p in CHAPTERS}
    toc = _toc_files()
    assert chapters <= toc
    for entry in toc:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".ipynb", ".md")), entry


def test_first_code_cell_is_the_bootstrap_for_the_configured_repository() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "bootstrap_cells.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_follows_the_house_rules(path: Path) -> None:
    notebook = json.loads(path.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    cells = notebook["cells"]
    assert cells[0]["cell_type"] == "markdown"
    titles = re.findall(r"^# \S", _markdown(path), flags=re.MULTILINE)
    assert len(titles) == 1, "exactly one H1 title"
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, \
                "commit chapters without outputs; the book build executes them"
            assert "sys.path" not in "".join(cell["source"])
    text = _markdown(path)
    assert "## Exercises" in text
    assert "{exercise}" in text and "{solution-start}" in text and ":class: dropdown" in text
    assert "{cite}" in text


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_figure_cells_show_their_figure_once(path: Path) -> None:
    """The inline backend shows a cell's figure; a Figure left as the cell's value would be
    shown a second time, with a duplicate label. So a figure cell ends in ``plt.show()``
    or in a line closed by ``;``."""
    for cell in _cells(path):
        if cell["cell_type"] == "code" and "figure" in cell["metadata"].get("mystnb", {}):
            last = "".join(cell["source"]).rstrip().splitlines()[-1].strip()
            assert last == "plt.show()" or last.endswith(";"), f"figure cell ends with {last!r}"
