"""When each part of a run really started, against the run's one time zero.

:meth:`netlab.run.start.ActiveRun.begin` hands one instant to every trace
replayer, user-space link and waiting sender; this reads back from their own
logs what each did with it, for ``results.json``'s ``clock`` section:

* a kernel replayer: the zero in its log's header and how late its first
  change (the trace's t = 0) took effect;
* a user-space link: the zero it recorded and how long before it the
  instant arrived (negative: after it, the link started late);
* a flow whose sender waited for its start: the instant it was given and
  when it started sending (a TCP sender's start includes its handshake).

Offsets are in ms from where each should be (the zero, or the zero plus the
flow's ``start``); all clocks are CLOCK_MONOTONIC, one clock for every process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netlab.run.flows import FlowProcesses, RunningFlow
from netlab.run.kinds import kind_of
from shaping.replay.log import ReplayLog
from shaping.userlink import UserLinkHandle


def _ms(ns: int | float) -> float:
    return round(ns / 1e6, 3)


def _sender_meta(fp: FlowProcesses) -> dict[str, Any]:
    name = kind_of(fp.flow.kind).sender_meta
    if name is None:
        return {}
    try:
        meta = json.loads((fp.sender_dir / name).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def flow_starts(zero_ns: int, flows: Sequence[RunningFlow]) -> list[dict[str, Any]]:
    """Each gated flow: the start it was asked for, given, and really took (ms offsets)."""
    out: list[dict[str, Any]] = []
    for rf in flows:
        if not isinstance(rf, FlowProcesses) or not rf.gated:
            continue
        asked_ns = zero_ns + round(rf.flow.start_s * 1e9)
        meta = _sender_meta(rf)
        given, began = meta.get("start_at_ns"), meta.get("started_ns")
        out.append({
            "flow": rf.flow.id, "start_s": rf.flow.start_s,
            "given_offset_ms": _ms(given - asked_ns) if isinstance(given, int) else None,
            "started_offset_ms": _ms(began - asked_ns) if isinstance(began, int) else None,
        })
    return out


def link_starts(zero_ns: int, replay_logs: dict[tuple[str, str], ReplayLog],
                user_links: dict[str, UserLinkHandle]) -> list[dict[str, Any]]:
    """Each link's trace zero as the link recorded it, and its offset from the run's."""
    out: list[dict[str, Any]] = []
    for (link, direction), log in sorted(replay_logs.items()):
        first = log.changes[:1]
        late = (_ms(int(first["applied_ns"][0]) - int(first["scheduled_ns"][0]))
                if len(first) else None)
        out.append({"link": link, "direction": direction, "backend": "kernel",
                    "trace_zero_ns": log.start_ns, "offset_ms": _ms(log.start_ns - zero_ns),
                    "first_change_late_ms": late})
    for name, handle in sorted(user_links.items()):
        record = handle.clock_record()
        if record is None:
            out.append({"link": name, "direction": "both", "backend": "user",
                        "trace_zero_ns": None, "offset_ms": None, "received_before_ms": None})
            continue
        zero = record["trace_zero_ns"]
        out.append({"link": name, "direction": "both", "backend": "user",
                    "trace_zero_ns": zero, "offset_ms": _ms(zero - zero_ns),
                    "received_before_ms": _ms(zero - record["received_ns"])})
    return out


def report(zero_ns: int, replay_logs: dict[tuple[str, str], ReplayLog],
           user_links: dict[str, UserLinkHandle], flows: Sequence[RunningFlow]
           ) -> dict[str, Any]:
    """The ``clock`` section of results.json."""
    return {"start_monotonic_ns": zero_ns, "trace_zero_ns": zero_ns,
            "links": link_starts(zero_ns, replay_logs, user_links),
            "flows": flow_starts(zero_ns, flows)}


def read_clock(run_dir: Path) -> dict[str, Any]:
    """A finished run's ``clock`` section (empty when it has none)."""
    try:
        value = json.loads((run_dir / "results.json").read_text()).get("clock") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}
