"""The largest trace netlab accepts, checked before anything is allocated.

A trace drives a real-time replay, so what it can sensibly hold is bounded by
what a lab can run: a day of schedule (a trace loops, so a day's pattern
repeats), capacities up to 10 Tbit/s (beyond any NIC a lab shapes), delays and
jitter up to a minute, a file up to 64 MiB (the bundled corpus's largest file
is under 1 MiB; Mahimahi's 12 Mbit/s cellular traces are ~60 kB per minute)
and a million segments.  Without these a two-line Mahimahi file
(``0``, ``4000000000``) asked for 30 GiB and an OpenNetLab segment of 1e300 ms
was accepted.
"""

from __future__ import annotations

from typing import Final

from shaping.traces.errors import TraceError

MAX_SPAN_S: Final = 24 * 3600.0
MAX_SPAN_TEXT: Final = "24 h"
MAX_RATE_BPS: Final = 10e12
MAX_DELAY_S: Final = 60.0
MAX_QUEUE_PACKETS: Final = 10_000_000
MAX_FILE_BYTES: Final = 64 << 20
MAX_SEGMENTS: Final = 1_000_000

#: The largest value of a field by its unit, for the readers' number checks.
UNIT_MAXIMA: Final = {
    "ms": MAX_SPAN_S * 1e3,
    "s": MAX_SPAN_S,
    "kbit/s": MAX_RATE_BPS / 1e3,
    "Mbit/s": MAX_RATE_BPS / 1e6,
    "packets": float(MAX_QUEUE_PACKETS),
}
UNIT_FIXES: Final = {
    "ms": f"netlab replays traces of at most {MAX_SPAN_TEXT}",
    "s": f"netlab replays traces of at most {MAX_SPAN_TEXT}",
    "kbit/s": "netlab shapes at most 10 Tbit/s",
    "Mbit/s": "netlab shapes at most 10 Tbit/s",
    "packets": "a queue holds at most 10 million packets",
}


def check_file_size(size: int, file: str) -> None:
    if size > MAX_FILE_BYTES:
        raise TraceError(
            f"trace file is {size / (1 << 20):.0f} MiB, over the {MAX_FILE_BYTES >> 20} MiB "
            "netlab reads",
            file=file,
            fix=f"cut the trace (at most {MAX_SPAN_TEXT}, {MAX_SEGMENTS} segments); "
            "a trace loops, so a shorter period repeats",
        )


def check_span(span_s: float, file: str, line: int | None = None) -> None:
    if span_s > MAX_SPAN_S:
        raise TraceError(
            f"the trace spans {span_s:.4g} s, beyond the longest netlab replays "
            f"({MAX_SPAN_S:g} s, {MAX_SPAN_TEXT})",
            file=file,
            line=line,
            fix=f"cut the trace to at most {MAX_SPAN_TEXT}; a trace loops, so a day's pattern "
            "repeats",
        )


def check_segments(count: int, file: str, line: int | None = None) -> None:
    if count > MAX_SEGMENTS:
        raise TraceError(
            f"the trace has more than {MAX_SEGMENTS} segments",
            file=file,
            line=line,
            fix="merge segments of equal capacity, or use a coarser trace",
        )
