"""Pensieve / FCC-style "cooked" throughput traces.

Format (hongzimao/pensieve ``sim/load_trace.py`` and ``traces/README.md``): one
``time_s throughput_Mbps`` pair per line, whitespace separated, time from the
trace start. Pensieve's simulator (``sim/env.py``) spends
``cooked_time[i] - cooked_time[i - 1]`` seconds at ``cooked_bw[i]``: each
throughput was measured over the interval that ends at its timestamp, so
row ``i`` (i >= 1) holds over ``[t[i-1], t[i])`` and the first row's value
only marks the start. At the end the simulator wraps to the start: the trace
loops with period ``t[-1] - t[0]``.
"""

from __future__ import annotations

from pathlib import Path

from shaping.traces import _checks, budgets
from shaping.traces.errors import TraceError
from shaping.traces.model import Trace

FORMAT = "pensieve"


def parse(text: str, file: str = "<text>", name: str = "") -> Trace:
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    stamps: list[float] = []
    mbps: list[float] = []
    for number, row in enumerate(rows, start=1):
        cells = row.split()
        if not cells:
            raise TraceError(
                "empty line in a Pensieve trace",
                file=file,
                line=number,
                fix="delete the empty line",
            )
        if len(cells) != 2:
            raise TraceError(
                f"expected 2 columns (time_s throughput_Mbps), found {len(cells)}",
                file=file,
                line=number,
                fix="write one 'seconds Mbit/s' pair per line",
            )
        stamp = _checks.text_number(cells[0], what="time", file=file, line=number)
        rate = _checks.text_number(cells[1], what="throughput", file=file, line=number,
                                   unit="Mbit/s")
        if stamps:
            budgets.check_span(stamp - stamps[0], file, number)
        if stamps and stamp < stamps[-1]:
            raise TraceError(
                f"time {stamp:g} s goes back (the line before says {stamps[-1]:g} s)",
                file=file,
                line=number,
                fix="sort the lines by time",
            )
        if stamps and stamp == stamps[-1]:
            raise TraceError(
                f"time {stamp:g} s repeats: a zero-length interval",
                file=file,
                line=number,
                fix="delete one of the two lines",
            )
        stamps.append(stamp)
        mbps.append(rate)
    if len(stamps) < 2:
        raise TraceError(
            "a Pensieve trace needs at least two lines; with fewer it has zero length",
            file=file,
            line=max(1, len(stamps)),
            fix="add a second 'time_s throughput_Mbps' line (each line closes an interval)",
        )
    origin = stamps[0]
    return Trace(
        times_s=tuple(t - origin for t in stamps[:-1]),
        rates_bps=tuple(b * 1e6 for b in mbps[1:]),
        period_s=stamps[-1] - origin,
        loop=True,
        name=name,
        source_format=FORMAT,
    )


def read(path: Path, name: str = "") -> Trace:
    budgets.check_file_size(path.stat().st_size, str(path))
    return parse(path.read_bytes().decode("utf-8"), str(path), name or path.name)


def format_text(trace: Trace) -> str:
    """Row 0 opens the trace; row i closes segment i - 1 with its rate."""
    lines = [f"{0.0!r} {trace.rates_bps[0] / 1e6!r}"]
    for segment in trace.segments():
        lines.append(f"{round(segment.end_s, 6)!r} {segment.rate_bps / 1e6!r}")
    return "\n".join(lines) + "\n"


def write(trace: Trace, path: Path) -> None:
    path.write_text(format_text(trace), encoding="utf-8")
