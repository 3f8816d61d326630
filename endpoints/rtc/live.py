"""The live stats stream: one JSON line per process every 250 ms in ``<log-dir>/live.jsonl``.

The lab's live view tails this file while a run goes on. Sender and
receiver of a flow may share the file: each line is written with a single
``write`` on an ``O_APPEND`` descriptor, so lines never interleave; the
``role`` key tells them apart.

Keys of every line: ``role`` ("sender" | "receiver"), ``time_ns``
(CLOCK_MONOTONIC), ``t_s`` (seconds since the process started),
``rate_bps`` (sent or received over the last interval), ``loss`` (fraction
lost so far), ``owd_ms`` (median one-way delay of the packets of the last
interval; null if none), ``estimate_bps`` (sender: current target; receiver:
last estimate sent in REMB, null without a receiver-side estimator). Each
role adds its own keys (documented in its module).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LIVE_FILE = "live.jsonl"
LIVE_INTERVAL_NS = 250_000_000


class LiveWriter:
    def __init__(self, log_dir: Path | None) -> None:
        self._fd: int | None = None
        if log_dir is not None:
            self._fd = os.open(log_dir / LIVE_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                               0o644)

    def write(self, line: dict[str, Any]) -> None:
        if self._fd is not None:
            os.write(self._fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_live(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All complete lines (a half-written last line is skipped)."""
    out: list[dict[str, Any]] = []
    text = Path(path).read_text()
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        out.append(json.loads(line))
    return out


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
