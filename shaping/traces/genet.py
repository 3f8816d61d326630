"""Genet (Aurora simulator) trace JSON and bandwidth CSV.

JSON, as written by Genet's ``Trace.dump`` and read by ``Trace.load_from_file``
(GenetProject/Genet ``src/simulator/trace.py``): ``timestamps`` (s),
``bandwidths`` (Mbit/s), ``delays`` (one-way, ms: one value, or one per
timestamp), ``loss`` (random loss rate), ``queue`` (packets), optional
``delay_noise`` (ms, the most uniform noise added per packet) and ``T_s``
(s, the change interval the generator used). Bandwidth ``i`` holds from
``timestamps[i]`` to ``timestamps[i + 1]``; the last timestamp marks the end
(a single timestamp is a constant trace of that duration). Genet's simulator
does not loop: past the end it keeps the last value (``get_bandwidth``).

CSV (``load_bandwidth_from_file`` in the same file): a ``Timestamp,Bandwidth``
header, then seconds and Mbit/s rows with the same meaning.

Genet raises bandwidths below 0.1 Mbit/s to 0.1 when it loads them; netlab
keeps the file's values (a 0 is an outage), so a trace means the same on
every backend. A ``queue`` of 0 means "not given" (netlab writes 0 when the
trace has no queue size).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from shaping.traces import _checks, budgets
from shaping.traces._jsonloc import load_located_json
from shaping.traces.errors import TraceError
from shaping.traces.model import Trace

FORMAT = "genet"
CSV_FORMAT = "genet-csv"
JSON_KEYS = ("timestamps", "bandwidths", "delays", "loss", "queue", "delay_noise", "T_s")
CSV_HEADER = ("Timestamp", "Bandwidth")


def looks_like(document: object) -> bool:
    return isinstance(document, dict) and "timestamps" in document


def _series_trace(
    stamps: Sequence[float],
    mbps: Sequence[float],
    lines: Sequence[int],
    file: str,
    what: str,
) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """Segment starts, rates and period from Genet's timestamp/bandwidth lists."""
    for index in range(1, len(stamps)):
        if stamps[index] < stamps[index - 1]:
            raise TraceError(
                f"{what} {stamps[index]:g} s goes back (the one before is {stamps[index - 1]:g} s)",
                file=file,
                line=lines[index],
                fix="sort the rows by time",
            )
        if stamps[index] == stamps[index - 1]:
            raise TraceError(
                f"{what} {stamps[index]:g} s repeats: a zero-length segment",
                file=file,
                line=lines[index],
                fix="delete one of the two rows",
            )
    if len(stamps) == 1:
        if stamps[0] <= 0:
            raise TraceError(
                "a single-timestamp Genet trace is constant for that many seconds; "
                "0 is zero length",
                file=file,
                line=lines[0],
                fix="give the duration in seconds (> 0) or add a second timestamp",
            )
        return (0.0,), (mbps[0] * 1e6,), stamps[0]
    origin = stamps[0]
    times = tuple(t - origin for t in stamps[:-1])
    rates = tuple(b * 1e6 for b in mbps[:-1])
    return times, rates, stamps[-1] - origin


def parse_json(text: str, file: str = "<text>", name: str = "") -> Trace:
    return from_document(load_located_json(text, file), file, name)


def from_document(document: object, file: str, name: str = "") -> Trace:
    top = _checks.obj(document, what="the trace file", file=file, line=1)
    _checks.known_keys(top, JSON_KEYS, where="a Genet trace", file=file)
    for key in ("timestamps", "bandwidths", "delays", "loss", "queue"):
        _checks.required(top, key, where="a Genet trace", file=file, line=top.line)

    def numbers(key: str, unit: str, maximum: float | None = None
                ) -> tuple[list[float], list[int]]:
        values = _checks.array(top[key], what=f"'{key}'", file=file, line=top.key_lines[key])
        budgets.check_segments(len(values), file, top.key_lines[key])
        result = [
            _checks.number(v, what=f"{key}[{i}]", file=file, line=values.item_lines[i], unit=unit,
                           maximum=maximum)
            for i, v in enumerate(values)
        ]
        return result, values.item_lines

    stamps, stamp_lines = numbers("timestamps", "s")
    mbps, _ = numbers("bandwidths", "Mbit/s")
    delays_ms, _ = numbers("delays", "ms", budgets.MAX_DELAY_S * 1e3)
    if not stamps:
        raise TraceError(
            "'timestamps' is empty: the trace has zero length",
            file=file,
            line=top.key_lines["timestamps"],
            fix="list at least the trace's end time",
        )
    if len(mbps) != len(stamps):
        raise TraceError(
            f"'bandwidths' has {len(mbps)} values for {len(stamps)} timestamps",
            file=file,
            line=top.key_lines["bandwidths"],
            fix="give one bandwidth per timestamp",
        )
    if len(delays_ms) not in (1, len(stamps)):
        raise TraceError(
            f"'delays' has {len(delays_ms)} values; Genet wants 1 or one per timestamp "
            f"({len(stamps)})",
            file=file,
            line=top.key_lines["delays"],
            fix="give a single one-way delay or one per timestamp",
        )
    times, rates, period = _series_trace(stamps, mbps, stamp_lines, file, "timestamp")
    if len(delays_ms) == 1:
        delays = tuple(delays_ms[0] / 1000.0 for _ in times)
    else:
        delays = tuple(d / 1000.0 for d in delays_ms[: len(times)])
    loss = _checks.number(
        top["loss"], what="loss", file=file, line=top.key_lines["loss"], maximum=1.0
    )
    queue = _checks.number(
        top["queue"], what="queue", file=file, line=top.key_lines["queue"], unit="packets"
    )
    if queue != int(queue):
        raise TraceError(
            f"queue {queue!r} is not a whole number of packets",
            file=file,
            line=top.key_lines["queue"],
            fix="write the queue size in whole packets",
        )
    noise_s = None
    if "delay_noise" in top:
        noise_s = (
            _checks.number(
                top["delay_noise"],
                what="delay_noise",
                file=file,
                line=top.key_lines["delay_noise"],
                unit="ms",
                maximum=budgets.MAX_DELAY_S * 1e3,
            )
            / 1000.0
        )
    if "T_s" in top:
        _checks.number(top["T_s"], what="T_s", file=file, line=top.key_lines["T_s"], unit="s")
    return Trace(
        times_s=times,
        rates_bps=rates,
        period_s=period,
        loop=False,
        delays_s=delays,
        losses=tuple(loss for _ in times),
        queue_packets=int(queue) if queue > 0 else None,
        delay_noise_s=noise_s,
        name=name,
        source_format=FORMAT,
    )


def parse_csv(text: str, file: str = "<text>", name: str = "") -> Trace:
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    rows = [row.rstrip("\r") for row in rows]
    if not rows or tuple(cell.strip() for cell in rows[0].split(",")) != CSV_HEADER:
        raise TraceError(
            f"a Genet bandwidth CSV starts with the header 'Timestamp,Bandwidth', "
            f"not {rows[0][:60]!r}"
            if rows
            else "empty Genet bandwidth CSV",
            file=file,
            line=1,
            fix="make the first line exactly: Timestamp,Bandwidth (seconds, Mbit/s)",
        )
    stamps: list[float] = []
    mbps: list[float] = []
    lines: list[int] = []
    for number, row in enumerate(rows[1:], start=2):
        if row.strip() == "":
            raise TraceError(
                "empty line in a Genet CSV", file=file, line=number, fix="delete the empty line"
            )
        cells = row.split(",")
        if len(cells) != 2:
            raise TraceError(
                f"expected 2 columns (Timestamp,Bandwidth), found {len(cells)}",
                file=file,
                line=number,
                fix="write: seconds,Mbit/s",
            )
        stamps.append(
            _checks.text_number(cells[0].strip(), what="Timestamp", file=file, line=number,
                                unit="s")
        )
        mbps.append(_checks.text_number(cells[1].strip(), what="Bandwidth", file=file, line=number,
                                        unit="Mbit/s"))
        lines.append(number)
    if not stamps:
        raise TraceError(
            "the CSV has a header but no rows: zero length",
            file=file,
            line=1,
            fix="add Timestamp,Bandwidth rows",
        )
    times, rates, period = _series_trace(stamps, mbps, lines, file, "Timestamp")
    return Trace(
        times_s=times,
        rates_bps=rates,
        period_s=period,
        loop=False,
        name=name,
        source_format=CSV_FORMAT,
    )


def read_json(path: Path, name: str = "") -> Trace:
    budgets.check_file_size(path.stat().st_size, str(path))
    return parse_json(path.read_bytes().decode("utf-8"), str(path), name or path.name)


def read_csv(path: Path, name: str = "") -> Trace:
    budgets.check_file_size(path.stat().st_size, str(path))
    return parse_csv(path.read_bytes().decode("utf-8"), str(path), name or path.name)


def _ends_with_last(trace: Trace) -> tuple[list[float], list[float]]:
    """Genet's lists: one row per segment start plus the end, repeating the last value."""
    stamps = [round(t, 6) for t in trace.times_s] + [round(trace.period_s, 6)]
    mbps = [r / 1e6 for r in trace.rates_bps]
    return stamps, [*mbps, mbps[-1]]


def to_document(trace: Trace) -> dict[str, object]:
    stamps, mbps = _ends_with_last(trace)
    delays = [0.0] if trace.delays_s is None else [d * 1000.0 for d in trace.delays_s]
    if len(set(delays)) == 1:
        delays = delays[:1]
    else:
        delays.append(delays[-1])
    losses = set(trace.losses or (0.0,))
    if len(losses) != 1:
        raise TraceError(
            "Genet traces have one loss rate; this trace's loss changes over time",
            fix="write OpenNetLab JSON instead (it keeps a loss per segment)",
        )
    document: dict[str, object] = {
        "timestamps": stamps,
        "bandwidths": mbps,
        "delays": delays,
        "loss": losses.pop(),
        "queue": trace.queue_packets if trace.queue_packets is not None else 0,
    }
    if trace.delay_noise_s is not None:
        document["delay_noise"] = trace.delay_noise_s * 1000.0
    return document


def format_json(trace: Trace) -> str:
    return json.dumps(to_document(trace), indent=2) + "\n"


def format_csv(trace: Trace) -> str:
    stamps, mbps = _ends_with_last(trace)
    body = "".join(f"{t!r},{b!r}\n" for t, b in zip(stamps, mbps, strict=True))
    return ",".join(CSV_HEADER) + "\n" + body


def write_json(trace: Trace, path: Path) -> None:
    path.write_text(format_json(trace), encoding="utf-8")


def write_csv(trace: Trace, path: Path) -> None:
    path.write_text(format_csv(trace), encoding="utf-8")
