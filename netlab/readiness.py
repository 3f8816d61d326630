"""Waiting for a flow's receiving side to be ready, instead of a fixed head start.

A receiving endpoint (the RTC and TCP receivers, the policy receiver built on
the RTC one) replaces ``ready.json`` in its log directory at each step of its
start (``endpoints.ready``): ``starting`` with what it is doing ("binding
10.0.0.2:5004", "loading plugin /x/BandwidthEstimator.py"), then ``ready``
once its socket is bound and its plugins and models are loaded. The flow
runner waits for it before starting any sender, so nothing sent is lost to a
receiver still importing torch. A kind whose receiver is another program
(a command flow with ``ready:``) can write the same file, or be checked by
port or log line and then call :func:`mark_ready` for it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netlab.errors import NetlabError

READY_FILE = "ready.json"  # endpoints.ready.READY_FILE: the one contract
#: A plugin importing torch and loading a model on a busy 2-vCPU machine takes
#: seconds; a receiver not ready after this is stuck.
DEFAULT_READY_TIMEOUT_S = 60.0
POLL_S = 0.01
TAIL_LINES = 1  # the receiver's last line: its one-line error


@dataclass(frozen=True)
class Waiting:
    """One receiving side to wait for."""

    flow: str  # the flow's id, for messages
    directory: Path  # where its ready.json appears
    process: subprocess.Popen[bytes] | None = None  # to notice an early exit
    output: Path | None = None  # its stdout/stderr, quoted when it fails
    role: str = "receiver"  # or "sender": one started early, waiting for its start


def read_state(directory: Path) -> dict[str, Any] | None:
    """The endpoint's latest ``ready.json`` (None before its first write)."""
    try:
        value = json.loads((directory / READY_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def mark_ready(directory: Path, doing: str) -> None:
    """Write ``ready`` for an endpoint that cannot say it itself."""
    record = {"state": "ready", "doing": doing, "pid": None, "time_ns": time.monotonic_ns()}
    temporary = directory / f".{READY_FILE}.tmp"
    temporary.write_text(json.dumps(record) + "\n")
    temporary.replace(directory / READY_FILE)


def _tail(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    return " | ".join(lines[-TAIL_LINES:])


def wait_ready(waiting: Sequence[Waiting], *, timeout_s: float = DEFAULT_READY_TIMEOUT_S
               ) -> dict[str, int]:
    """Block until every endpoint says ``ready``; its ready time (CLOCK_MONOTONIC ns)
    per flow. Raises NetlabError naming the flow and what it was doing when one
    exits first or is not ready within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pending = {w.flow: w for w in waiting}
    ready_ns: dict[str, int] = {}
    while pending:
        for flow, w in list(pending.items()):
            state = read_state(w.directory)
            if state is not None and state.get("state") == "ready":
                ready_ns[flow] = int(state.get("time_ns") or time.monotonic_ns())
                del pending[flow]
                continue
            doing = str(state.get("doing")) if state else "starting its process"
            if w.process is not None and w.process.poll() is not None:
                tail = _tail(w.output)
                raise NetlabError(
                    f"flow {flow}: the {w.role} exited (status {w.process.returncode}) while "
                    f"{doing}" + (f": {tail}" if tail else ""),
                    where=str(w.output or w.directory),
                    fix=f"read the {w.role}'s log there (a plugin's own traceback is in it)")
            if time.monotonic() >= deadline:
                raise NetlabError(
                    f"flow {flow}: the {w.role} was not ready after {timeout_s:.0f} s; it was "
                    f"{doing}", where=str(w.directory / READY_FILE),
                    fix=f"make the plugin or model load faster, or check the {w.role}'s log "
                        "in that folder")

        if pending:
            time.sleep(POLL_S)
    return ready_ns
