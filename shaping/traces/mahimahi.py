"""Mahimahi / Pantheon delivery-opportunity files.

Format (mahimahi ``traces/`` and ``src/packet/link_queue.cc``; Pantheon uses
the same files): one non-negative integer per line, a millisecond offset at
which one 1504-byte packet may leave; a repeated line is several packets in
that millisecond; the schedule loops with period = the last timestamp.
mm-link rejects an empty line ("invalid empty line"), a timestamp smaller than
the one before ("timestamps must be monotonically nondecreasing"), an empty
file ("no valid timestamps found") and a last timestamp of 0 ("trace must last
for a nonzero amount of time"); so do we, naming the line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shaping.traces import budgets
from shaping.traces.errors import TraceError
from shaping.traces.model import MAHIMAHI_PACKET_BITS, Trace

FORMAT = "mahimahi"
#: 5 million 1504-byte opportunities: 1 Gbit/s for 60 s, or 12 Mbit/s for 83 min.
MAX_LINES = 5_000_000


def parse(text: str, file: str = "<text>", name: str = "") -> Trace:
    if text.count("\n") > MAX_LINES:
        raise TraceError(
            f"Mahimahi trace has more than {MAX_LINES} lines (delivery opportunities)",
            file=file,
            line=MAX_LINES + 1,
            fix="use a shorter or slower trace; it loops, so a shorter period repeats",
        )
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise TraceError(
            "Mahimahi trace has no timestamps",
            file=file,
            fix="write one millisecond timestamp per line (`netlab traces convert` makes them)",
        )
    stamps: list[int] = []
    previous = -1
    for number, line in enumerate(lines, start=1):
        if not line.isdigit() or not line.isascii():
            if line.endswith("\r") and line[:-1].isdigit():
                raise TraceError(
                    "Windows line ending (CR LF) in a Mahimahi trace (mm-link rejects it)",
                    file=file,
                    line=number,
                    fix="convert the file to LF line endings (e.g. dos2unix)",
                )
            if line.strip() == "":
                raise TraceError(
                    "empty line in a Mahimahi trace (mm-link rejects it)",
                    file=file,
                    line=number,
                    fix="delete the empty line",
                )
            raise TraceError(
                f"{line.strip()[:40]!r} is not a non-negative integer millisecond timestamp",
                file=file,
                line=number,
                fix="each line must hold only digits (no sign, decimals, spaces or CR)",
            )
        if len(line) > 12 or int(line) > budgets.MAX_SPAN_S * 1000:
            shown = line if len(line) <= 20 else f"{line[:12]}... ({len(line)} digits)"
            raise TraceError(
                f"timestamp {shown} ms is beyond the longest trace netlab replays "
                f"({budgets.MAX_SPAN_S * 1000:.0f} ms, {budgets.MAX_SPAN_TEXT})",
                file=file,
                line=number,
                fix=f"cut the trace to at most {budgets.MAX_SPAN_TEXT}; a trace loops, "
                "so a day's pattern repeats",
            )
        stamp = int(line)
        if stamp < previous:
            raise TraceError(
                f"timestamp {stamp} ms goes back (the line before says {previous} ms)",
                file=file,
                line=number,
                fix="sort the timestamps in non-decreasing order",
            )
        stamps.append(stamp)
        previous = stamp
    if stamps[-1] == 0:
        raise TraceError(
            "Mahimahi trace has zero length (its last timestamp, the loop period, is 0 ms)",
            file=file,
            line=len(lines),
            fix="end the trace with a timestamp > 0; the last timestamp is the period",
        )
    return Trace.from_opportunities(stamps, name=name, source_format=FORMAT)


def read(path: Path, name: str = "") -> Trace:
    budgets.check_file_size(path.stat().st_size, str(path))
    return parse(path.read_bytes().decode("ascii", errors="replace"), str(path), name or path.name)


def opportunities_for(trace: Trace) -> list[int]:
    """Delivery opportunities (ms) that carry ``trace``'s capacity.

    A trace read from Mahimahi gives back its own opportunities, exactly.
    Otherwise the ``n``-th packet is scheduled in the millisecond where the
    cumulative capacity first reaches ``n`` x (total / N) with N = round(total /
    1504 B): the same accumulate-and-floor idea as Pensieve's and Genet's
    Mahimahi converters (pensieve traces/fcc/convert_mahimahi_format.py, Genet
    src/simulator/trace.py ``convert_to_mahimahi_format``), scaled so that the
    last packet falls on the period end, as Mahimahi's loop rule needs.
    """
    if trace.opportunities_ms is not None:
        return list(trace.opportunities_ms)
    period_ms = trace.period_s * 1000.0
    if abs(period_ms - round(period_ms)) > 1e-6:
        raise TraceError(
            f"a Mahimahi trace's period is whole milliseconds; this one is {period_ms:.4f} ms",
            fix="cut or extend the trace to a whole number of milliseconds",
        )
    periods = round(period_ms)
    total_bits = trace.total_bits()
    packets = round(total_bits / MAHIMAHI_PACKET_BITS)
    if packets == 0:
        raise TraceError(
            f"the trace carries {total_bits:.0f} bits per period, less than one 1504-byte packet",
            fix="use a longer trace or a higher rate; Mahimahi cannot express it",
        )
    last = trace.segment(trace.segment_count - 1)
    if last.rate_bps == 0 or trace.capacity_at(trace.period_s - 0.0005) == 0:
        raise TraceError(
            "the trace ends with zero capacity, but a Mahimahi trace's period is its last "
            "delivery opportunity",
            fix="end the trace with capacity > 0, or write OpenNetLab JSON instead",
        )
    # Cumulative bits at the end of each millisecond.
    edges = np.arange(1, periods + 1, dtype=np.float64) / 1000.0
    starts = np.asarray(trace.times_s, dtype=np.float64)
    rates = np.asarray(trace.rates_bps, dtype=np.float64)
    ends = np.append(starts[1:], trace.period_s)
    integral = np.concatenate(([0.0], np.cumsum(rates * (ends - starts))))
    index = np.clip(np.searchsorted(starts, edges, side="right") - 1, 0, len(starts) - 1)
    cumulative = integral[index] + rates[index] * (edges - starts[index])
    cumulative[-1] = integral[-1]
    per_packet = total_bits / packets
    # Packet n (1..N) leaves in the first millisecond whose cumulative >= n * per_packet.
    thresholds = np.arange(1, packets + 1, dtype=np.float64) * per_packet
    ms = np.searchsorted(cumulative, thresholds - per_packet * 1e-9, side="left") + 1
    ms[-1] = periods
    return [int(v) for v in np.minimum(ms, periods)]


def format_text(trace: Trace) -> str:
    stamps = opportunities_for(trace)
    return "\n".join(str(s) for s in stamps) + "\n"


def write(trace: Trace, path: Path) -> None:
    path.write_text(format_text(trace), encoding="ascii")
