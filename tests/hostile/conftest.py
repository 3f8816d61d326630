"""Hostile inputs go through the real CLI in a child process with a 4 GiB
address-space limit: each must be refused quickly, with netlab's what/where/fix
message and no traceback (issue 16, items 3 and 7)."""

from __future__ import annotations

import json
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
    refusal = Refusal(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    assert_refused(refusal)
    return refusal


#: A child that runs ``netlab.cli.main.main`` once per case, each in its own
#: folder with its output on fds 1 and 2 captured, and writes what each case
#: did to the JSON file named by argv[2].
_EACH = """
import json, os, sys, tempfile, time, traceback
from netlab.cli.main import main
cases, out_path = json.loads(sys.argv[1]), sys.argv[2]
done = {}
for name, (folder, args) in cases.items():
    os.chdir(folder)
    captured = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    sys.stdout.flush(); sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(captured[0].fileno(), 1); os.dup2(captured[1].fileno(), 2)
    started = time.monotonic()
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # what main let through would reach a user: keep it visible
        traceback.print_exc()
        code = 1
    seconds = time.monotonic() - started
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(saved[0], 1); os.dup2(saved[1], 2)
    texts = []
    for handle in captured:
        handle.seek(0)
        texts.append(handle.read().decode(errors="replace"))
    done[name] = [code, texts[0], texts[1], seconds]
with open(out_path, "w") as handle:
    json.dump(done, handle)
"""


def refuse_each(cases: dict[str, tuple[Path, list[str]]], work: Path) -> dict[str, Refusal]:
    """``netlab ARGS`` for every case (its folder, its words) in one child
    under the same limit, so the CLI's imports (torch) are paid once; each
    case is then asserted as ``refuse`` asserts it, by its own test."""
    out_path = work / "refusals.json"
    spec = {name: [str(folder), args] for name, (folder, args) in cases.items()}
    proc = subprocess.run(
        [sys.executable, "-c", _EACH, json.dumps(spec), str(out_path)], cwd=work,
        capture_output=True, text=True, timeout=QUICK_S * len(cases), preexec_fn=_limit,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and out_path.exists(), proc.stdout + proc.stderr
    return {name: Refusal(*values) for name, values in json.loads(out_path.read_text()).items()}


def assert_refused(refusal: Refusal) -> None:
    """What ``refuse`` asserts of one refusal."""
    out = refusal.stdout + refusal.stderr
    assert refusal.returncode != 0, out
    assert "Traceback" not in out and "MemoryError" not in out, out
    assert "error: " in refusal.stderr, out
    assert refusal.seconds < QUICK_S, f"took {refusal.seconds:.1f} s: {out}"


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    return tmp_path
