"""`netlab up --dry-run` prints every object and qdisc, and makes none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from netlab.lab import netns

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden") / "two-hosts.dry-run.txt"


def test_dry_run_matches_golden_and_creates_nothing() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "netlab.cli.main", "up", "--dry-run", "--subnet", "10.77.0.0/16",
         str(REPO / "scenarios" / "two-hosts.yaml")],
        capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out == GOLDEN.read_text()
    assert not [ns for ns in netns.list_names() if ns.startswith("nl-two-hosts-")]
