"""Hostile inputs go through the real CLI in a child process with a 4 GiB
address-space limit: each must be refused quickly, with netlab's what/where/fix
message and no traceback (issue 16, items 3 and 7)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADDRESS_SPACE = 4 << 30
QUICK_S = 20.0  # generous for a loaded 2-core machine; a refusal takes well under 2 s alone


@dataclass
class Refusal:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def refuse(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Refusal:
    """Run ``netlab ARGS`` under the limit; assert it was refused cleanly."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "netlab.cli.main", *args], cwd=cwd, capture_output=True,
        text=True, timeout=QUICK_S * 3, preexec_fn=_limit,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    seconds = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out and "MemoryError" not in out, out
    assert "error: " in proc.stderr, out
    assert seconds < QUICK_S, f"took {seconds:.1f} s: {out}"
    return Refusal(proc.returncode, proc.stdout, proc.stderr, seconds)


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    return tmp_path
