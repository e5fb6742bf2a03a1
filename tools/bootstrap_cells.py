"""Keep every chapter's first code cell, the Colab/Binder bootstrap, in step with _config.yml.

The repository URL is defined once, as ``repository.url`` in ``_config.yml``. A fork
changes it there and runs ``make bootstrap-cells``; ``make test`` runs this script with
``--check``, which fails when a chapter's first code cell differs from the template.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = """\
# Colab and Binder: install byhand from the book's repository when it is missing.
try:
    import byhand
except ImportError:
    %pip install --quiet "byhand @ git+{url}"
    import byhand"""


def repository_url(root: Path = ROOT) -> str:
    """``repository.url`` from the book's ``_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/")


def bootstrap_source(url: str) -> str:
    """The exact source of the first code cell for a repository at ``url``."""
    return TEMPLATE.format(url=url)


def first_code_cell(notebook: dict) -> dict:
    """The notebook's first code cell; a chapter without one is an error."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            return cell
    raise ValueError("the notebook has no code cell")


def mismatched(chapters: list[Path], source: str) -> list[Path]:
    """The chapters whose first code cell is not ``source``."""
    bad = []
    for path in chapters:
        cell = first_code_cell(json.loads(path.read_text()))
        if "".join(cell["source"]) != source:
            bad.append(path)
    return bad


def rewrite(path: Path, source: str) -> None:
    """Replace the notebook's first code cell source with ``source``."""
    notebook = json.loads(path.read_text())
    lines = source.splitlines(keepends=True)
    first_code_cell(notebook)["source"] = lines
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report mismatches")
    args = parser.parse_args(argv)
    source = bootstrap_source(repository_url())
    chapters = sorted((ROOT / "chapters").glob("*.ipynb"))
    bad = mismatched(chapters, source)
    if args.check:
        for path in bad:
            print(f"{path.relative_to(ROOT)}: the first code cell is not the bootstrap "
                  "for repository.url in _config.yml; run `make bootstrap-cells`")
        return 1 if bad else 0
    for path in bad:
        rewrite(path, source)
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
