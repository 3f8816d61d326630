"""Readiness: an endpoint says what it is doing until it can take traffic.

The contract, shared by every kind of receiving endpoint and read by
``netlab.readiness.wait_ready``: a file ``ready.json`` in the endpoint's log
directory, replaced atomically (write, then rename) at each step::

    {"state": "starting", "doing": "loading plugin /x/BandwidthEstimator.py",
     "pid": 123, "time_ns": ...}
    {"state": "ready", "doing": "receiving on 10.0.0.2:5004", "pid": 123,
     "time_ns": ...}

``time_ns`` is CLOCK_MONOTONIC, the clock every netlab log uses. An endpoint
writes ``starting`` before anything slow (binding, importing a plugin,
loading a model) and ``ready`` once its socket is bound and everything it
needs is loaded, so a sender started on that signal loses no packet to a
slow start. A file, not a pipe: it works for processes in any namespace,
survives the reader starting late, and is left in the run for inspection.

A sender the lab starts early (``--wait-start``) writes the same file once it
is set up, then waits on stdin for its start instant: the run's one time zero
(plus the flow's ``start``), so its interpreter's start-up never shifts the
flow against the traces (:func:`ready_then_start_instant`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from labcore.startgate import read_start

READY_FILE = "ready.json"
STARTING, READY = "starting", "ready"


def write_state(log_dir: Path | None, state: str, doing: str) -> None:
    """Replace ``log_dir/ready.json`` with this step (nothing without a log dir)."""
    if log_dir is None:
        return
    record = {"state": state, "doing": doing, "pid": os.getpid(),
              "time_ns": time.monotonic_ns()}
    path = Path(log_dir) / READY_FILE
    temporary = path.with_name(f".{READY_FILE}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record) + "\n")
    os.replace(temporary, path)


def starting(log_dir: Path | None, doing: str) -> None:
    write_state(log_dir, STARTING, doing)


def ready(log_dir: Path | None, doing: str) -> None:
    write_state(log_dir, READY, doing)


def ready_then_start_instant(log_dir: Path | None, doing: str,
                             stopped: Callable[[], bool]) -> int | None:
    """A sender started before the run's zero: say ``ready``, then read its start
    instant (CLOCK_MONOTONIC ns) from stdin (:mod:`labcore.startgate`); None when
    stopped or when the lab closed stdin first.  The caller sleeps until it."""
    ready(log_dir, doing)
    return read_start(sys.stdin.fileno(), stopped)
