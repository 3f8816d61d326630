"""OpenNetLab / AlphaRTC gym trace JSON.

Format (OpenNetLab alphartc_gym ``tests/data/*.json`` and its challenge
traces; consumed by ``ns-app/scratch/webrtc_test/trace_player.cc``, which sets
the link to ``capacity * 1e3`` bit/s for ``duration`` ms and wraps to entry 0
after the last): ``{"type": ..., "downlink": {}, "uplink": {"trace_pattern": [{
"duration": ms, "capacity": kbit/s, "loss": 0..1, "rtt": ms, "jitter": ms}]}}``.
Only ``uplink`` drives the link. A missing ``loss`` or ``rtt`` carries the
previous entry's value forward (0 before the first one); a missing ``jitter``
is 0; ``capacity: 0`` lets nothing through; the pattern loops.

The pattern's ``rtt`` is a round trip; netlab shapes each direction on its
own, so the one-way delay kept in the trace is ``rtt / 2`` (and written back
as ``2 * delay``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shaping.traces import _checks, budgets
from shaping.traces._jsonloc import load_located_json
from shaping.traces.errors import TraceError
from shaping.traces.model import Trace

FORMAT = "opennetlab"
TOP_KEYS = ("type", "downlink", "uplink")
LINK_KEYS = ("trace_pattern",)
ENTRY_KEYS = ("duration", "capacity", "loss", "rtt", "jitter")


def looks_like(document: object) -> bool:
    return isinstance(document, dict) and ("uplink" in document or "downlink" in document)


def parse(text: str, file: str = "<text>", name: str = "") -> Trace:
    return from_document(load_located_json(text, file), file, name)


def from_document(document: object, file: str, name: str = "") -> Trace:
    top = _checks.obj(document, what="the trace file", file=file, line=1)
    _checks.known_keys(top, TOP_KEYS, where="the top level", file=file)
    if "type" in top and not isinstance(top["type"], str):
        raise TraceError(
            "'type' must be a string such as \"video\"",
            file=file,
            line=top.key_lines["type"],
            fix='write "type": "video"',
        )
    for direction in ("downlink", "uplink"):
        if direction in top:
            link = _checks.obj(
                top[direction], what=f"'{direction}'", file=file, line=top.key_lines[direction]
            )
            _checks.known_keys(link, LINK_KEYS, where=f"'{direction}'", file=file)
    uplink = _checks.obj(
        _checks.required(top, "uplink", where="the trace file", file=file, line=top.line),
        what="'uplink'",
        file=file,
        line=top.key_lines.get("uplink"),
    )
    pattern = _checks.array(
        _checks.required(uplink, "trace_pattern", where="'uplink'", file=file, line=uplink.line),
        what="'uplink.trace_pattern'",
        file=file,
        line=uplink.key_lines.get("trace_pattern"),
    )
    if not pattern:
        raise TraceError(
            "'uplink.trace_pattern' is empty: the trace has zero length",
            file=file,
            line=pattern.line,
            fix='add at least one {"duration": ms, "capacity": kbps} entry',
        )

    budgets.check_segments(len(pattern), file, pattern.line)
    times: list[float] = []
    rates: list[float] = []
    delays: list[float] = []
    losses: list[float] = []
    jitters: list[float] = []
    seen = {"loss": False, "rtt": False, "jitter": False}
    now_ms = 0.0
    loss = 0.0
    rtt_ms = 0.0
    for index, item in enumerate(pattern):
        where = f"uplink.trace_pattern[{index}]"
        entry = _checks.obj(item, what=where, file=file, line=pattern.item_lines[index])
        _checks.known_keys(entry, ENTRY_KEYS, where=where, file=file)

        def field(key: str, entry: Any = entry, where: str = where) -> tuple[object, int]:
            return entry[key], entry.key_lines.get(key, entry.line)

        for key in ("duration", "capacity"):
            _checks.required(entry, key, where=where, file=file, line=entry.line)
        value, line = field("duration")
        duration_ms = _checks.number(
            value, what=f"{where}.duration", file=file, line=line, positive=True, unit="ms"
        )
        value, line = field("capacity")
        capacity_kbps = _checks.number(
            value, what=f"{where}.capacity", file=file, line=line, unit="kbit/s"
        )
        if "loss" in entry:
            value, line = field("loss")
            loss = _checks.number(value, what=f"{where}.loss", file=file, line=line, maximum=1.0)
            seen["loss"] = True
        if "rtt" in entry:
            value, line = field("rtt")
            rtt_ms = _checks.number(value, what=f"{where}.rtt", file=file, line=line, unit="ms",
                                    maximum=2 * budgets.MAX_DELAY_S * 1e3)
            seen["rtt"] = True
        jitter_ms = 0.0
        if "jitter" in entry:
            value, line = field("jitter")
            jitter_ms = _checks.number(
                value, what=f"{where}.jitter", file=file, line=line, unit="ms",
                maximum=budgets.MAX_DELAY_S * 1e3,
            )
            seen["jitter"] = True
        times.append(now_ms / 1000.0)
        rates.append(capacity_kbps * 1000.0)
        delays.append(rtt_ms / 2000.0)
        losses.append(loss)
        jitters.append(jitter_ms / 1000.0)
        now_ms += duration_ms
        budgets.check_span(now_ms / 1000.0, file, line)
    return Trace(
        times_s=tuple(times),
        rates_bps=tuple(rates),
        period_s=now_ms / 1000.0,
        loop=True,
        delays_s=tuple(delays) if seen["rtt"] else None,
        losses=tuple(losses) if seen["loss"] else None,
        jitters_s=tuple(jitters) if seen["jitter"] else None,
        name=name,
        source_format=FORMAT,
    )


def read(path: Path, name: str = "") -> Trace:
    budgets.check_file_size(path.stat().st_size, str(path))
    return parse(path.read_bytes().decode("utf-8"), str(path), name or path.name)


def _plain(value: float, digits: int) -> float | int:
    rounded = round(value, digits)
    return int(rounded) if rounded == int(rounded) else rounded


def to_document(trace: Trace, trace_type: str = "video") -> dict[str, object]:
    """The JSON document for ``trace`` (capacity in kbit/s to 1 bit/s, times to 1 µs)."""
    if trace.opportunities_ms is not None and trace.segment_count > 20_000:
        raise TraceError(
            f"this Mahimahi trace has {trace.segment_count} millisecond segments",
            fix="bin it first (netlab traces convert --granularity 100ms)",
        )
    pattern: list[dict[str, float | int]] = []
    for segment in trace.segments():
        entry: dict[str, float | int] = {
            "duration": _plain(segment.duration_s * 1000.0, 3),
            "capacity": _plain(segment.rate_bps / 1000.0, 3),
        }
        if segment.loss is not None:
            entry["loss"] = _plain(segment.loss, 9)
        if segment.delay_s is not None:
            entry["rtt"] = _plain(segment.delay_s * 2000.0, 3)
        if segment.jitter_s is not None:
            entry["jitter"] = _plain(segment.jitter_s * 1000.0, 3)
        pattern.append(entry)
    return {"type": trace_type, "downlink": {}, "uplink": {"trace_pattern": pattern}}


def format_text(trace: Trace) -> str:
    return json.dumps(to_document(trace), indent=4) + "\n"


def write(trace: Trace, path: Path) -> None:
    path.write_text(format_text(trace), encoding="utf-8")
