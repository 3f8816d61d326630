"""The repository stands alone: nothing in it reads data from beside the clone.

CI (`.ci/run`) runs the suite in a copy with nothing next to it and sets
NETLAB_SELF_CONTAINED=1, so the last test proves the isolation happened
rather than trusting it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".txt", ".rb"}
SKIP_DIRS = {".git", ".venv", "runs", "build", "__pycache__", ".mypy_cache", ".ruff_cache"}
# Built by concatenation so this file does not match itself.
OUTSIDE = re.compile(r"\.\./" + "shared" + r"|/work/" + "shared" + r"|\bshared/" + "external")


def _text_files() -> list[Path]:
    files = [REPO / ".ci" / "run", REPO / "install.sh", REPO / "vagrant" / "Vagrantfile"]
    for path in REPO.rglob("*"):
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in
               path.relative_to(REPO).parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            files.append(path)
    return [path for path in files if path.exists()]


def test_no_file_refers_to_data_outside_the_clone() -> None:
    offenders = []
    for path in _text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "copy the data into the repository instead:\n" + "\n".join(offenders)


def test_external_test_data_is_in_the_repository() -> None:
    external = REPO / "tests" / "data" / "external"
    assert len(list((external / "mahimahi").iterdir())) == 4
    assert len(list((external / "opennetlab").glob("*.json"))) == 7
    assert (REPO / "models" / "opennetlab-pretrained.pth").stat().st_size > 50_000


@pytest.mark.skipif(os.environ.get("NETLAB_SELF_CONTAINED") != "1",
                    reason="only .ci/run isolates the clone")
def test_ci_clone_has_nothing_beside_it() -> None:
    beside = sorted(p.name for p in REPO.parent.iterdir())
    assert beside == [REPO.name], f"CI's clone is not alone: {beside}"
