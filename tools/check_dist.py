"""Check the built distributions before a release: the wheel holds the package, the C
source it compiles on the reader's machine (``native_logsumexp.c``), its typing marker
and its license, and nothing else; the sdist holds the package sources, README, LICENSE
and the build configuration, and nothing else.

    python tools/check_dist.py dist/byhand-*.whl dist/byhand-*.tar.gz

Exits non-zero, naming every unexpected or missing file.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGE = "byhand"
C_SOURCE = "native_logsumexp.c"


def wheel_problems(path: Path) -> list[str]:
    """What is wrong with the wheel at ``path`` (an empty list when nothing is)."""
    names = zipfile.ZipFile(path).namelist()
    dist_info = re.compile(rf"{PACKAGE}-[^/]+\.dist-info/")
    allowed = re.compile(rf"({PACKAGE}/.*\.py|{PACKAGE}/py\.typed|{PACKAGE}/{re.escape(C_SOURCE)}"
                         rf"|{dist_info.pattern}"
                         r"(METADATA|WHEEL|RECORD|top_level\.txt|entry_points\.txt|licenses/LICENSE))")
    problems = [f"{path.name}: unexpected {name}" for name in names if not allowed.fullmatch(name)]
    for required in (f"{PACKAGE}/__init__.py", f"{PACKAGE}/py.typed", f"{PACKAGE}/{C_SOURCE}"):
        if required not in names:
            problems.append(f"{path.name}: missing {required}")
    if not any(dist_info.match(n) and n.endswith("licenses/LICENSE") for n in names):
        problems.append(f"{path.name}: missing the license file")
    return problems


def sdist_problems(path: Path) -> list[str]:
    """What is wrong with the sdist at ``path`` (an empty list when nothing is)."""
    with tarfile.open(path) as archive:
        names = [m.name.split("/", 1)[1] for m in archive.getmembers()
                 if m.isfile() and "/" in m.name]
    allowed = re.compile(rf"(src/{PACKAGE}/.*\.py|src/{PACKAGE}/py\.typed|src/{PACKAGE}/{re.escape(C_SOURCE)}"
                         rf"|src/{PACKAGE}\.egg-info/.*"
                         r"|PKG-INFO|README\.md|LICENSE|MANIFEST\.in|pyproject\.toml|setup\.cfg)")
    problems = [f"{path.name}: unexpected {name}" for name in names if not allowed.fullmatch(name)]
    for required in ("pyproject.toml", "README.md", "LICENSE", f"src/{PACKAGE}/__init__.py",
                     f"src/{PACKAGE}/{C_SOURCE}"):
        if required not in names:
            problems.append(f"{path.name}: missing {required}")
    return problems


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: check_dist.py WHEEL_OR_SDIST ...", file=sys.stderr)
        return 2
    problems: list[str] = []
    for name in paths:
        path = Path(name)
        if path.suffix == ".whl":
            problems += wheel_problems(path)
        elif path.name.endswith(".tar.gz"):
            problems += sdist_problems(path)
        else:
            problems.append(f"{path.name}: neither a wheel nor an sdist")
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{len(paths)} distribution(s) hold what they should, and nothing else")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
