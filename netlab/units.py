"""Unit strings in scenario files: parse them to SI numbers, format them back.

Scenario files always carry an explicit unit (``10ms``, ``2.5Mbit``,
``0.5%``, ``100pkt``, ``64kB``) so a number can never be read in the wrong
unit.  This module is the only place that knows the spellings; everything
downstream works in seconds, bits per second, bytes, packets and fractions.

Conventions (chosen to be unambiguous, not to copy any one tool):

* Rates are bits per second: ``bit``, ``kbit``, ``Mbit``, ``Gbit``, ``Tbit``
  (case-insensitive, as tc writes ``mbit``), optionally followed by ``/s``.
  Byte rates need the ``/s``: ``B/s``, ``kB/s``, ``MB/s``, ``GB/s``, ``KiB/s``,
  ``MiB/s``, ``GiB/s``.  Prefixes are decimal (k = 1000) except the ``Ki``/
  ``Mi``/``Gi`` binary ones.
* ``bps``, ``kbps``, ``Mbps``, ``Gbps`` are **rejected**: tc(8) reads ``kbps``
  as kilo*bytes* per second while Mahimahi, OpenNetLab and most papers mean
  kilo*bits*; a silent factor of 8 is the worst kind of bug, so the error
  message offers both spellings instead of guessing.
* Sizes: ``B``, ``kB`` (1000 B), ``MB``, ``GB``, ``KiB`` (1024 B), ``MiB``,
  ``GiB``; ``KB`` is rejected as ambiguous (1000 or 1024?) and ``kb``/``Mb``
  as bits.  Queue limits may instead count packets: ``100pkt``.
* Durations: ``us`` (or ``µs``), ``ms``, ``s``, ``min``, ``h``.
* Percentages: ``0.5%`` is the fraction 0.005; bare numbers are rejected
  (is ``1`` one percent or certainty?).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shaping.spec import QueueLimit

DURATION_EXPECTED = "a duration such as 10ms or 1.5s"
RATE_EXPECTED = "a rate such as 10Mbit or 800kbit"
SIZE_EXPECTED = "a size such as 1500B or 64kB"
QUEUE_EXPECTED = "a queue limit such as 100pkt or 64kB"
PERCENT_EXPECTED = "a percentage such as 0.5%"

DURATION_UNITS: Mapping[str, float] = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
}
# Keys are lower-case: bit units are matched case-insensitively.
BIT_RATE_UNITS: Mapping[str, int] = {
    "bit": 1,
    "kbit": 10**3,
    "mbit": 10**6,
    "gbit": 10**9,
    "tbit": 10**12,
}
BYTE_UNITS: Mapping[str, int] = {
    "B": 1,
    "kB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
}
PACKET_UNITS = ("pkt", "pkts", "packet", "packets")

# The smallest rate tc can express is one byte per second.
MIN_RATE_BPS = 8
# Larger numbers are typos, and would overflow once multiplied by a unit.
MAX_NUMBER = 1e15

_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*(\S*)\s*$")


class UnitError(ValueError):
    """A unit string that does not parse; ``expected`` says what would.

    ``found`` describes the offending text and ``hint`` (optional) says how
    to write it correctly.
    """

    def __init__(self, expected: str, found: str, hint: str | None = None) -> None:
        message = f"expected {expected}, found {found}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)
        self.expected = expected
        self.found = found
        self.hint = hint


@dataclass(frozen=True)
class _Quantity:
    number: float
    number_text: str
    unit: str


def _split(text: str, expected: str) -> _Quantity:
    match = _QUANTITY.match(text)
    if match is None:
        raise UnitError(expected, repr(text))
    number_text, unit = match.group(1), match.group(2)
    number = float(number_text)
    if abs(number) > MAX_NUMBER:
        raise UnitError(expected, repr(text), "the number is implausibly large")
    return _Quantity(number, number_text.lstrip("+"), unit)


def _no_unit(quantity: _Quantity, text: str, expected: str, example_units: str) -> UnitError:
    return UnitError(
        expected,
        f"{text!r} (a number without a unit)",
        f"add a unit, e.g. {example_units.format(n=quantity.number_text)}",
    )


def _negative(text: str, expected: str, what: str) -> UnitError:
    return UnitError(expected, repr(text), f"{what} cannot be negative")


def _unknown_unit(text: str, expected: str, unit: str, known: str) -> UnitError:
    return UnitError(expected, repr(text), f"unknown unit {unit!r} (known units: {known})")


# --------------------------------------------------------------------- durations


_DURATION_HINTS: Mapping[str, str] = {
    "m": "'m' could be minutes or metres; write {n}min or {n}ms",
    "sec": "write {n}s",
    "secs": "write {n}s",
    "second": "write {n}s",
    "seconds": "write {n}s",
    "msec": "write {n}ms",
    "msecs": "write {n}ms",
    "usec": "write {n}us",
    "usecs": "write {n}us",
    "mins": "write {n}min",
    "minute": "write {n}min",
    "minutes": "write {n}min",
    "hr": "write {n}h",
    "hour": "write {n}h",
    "hours": "write {n}h",
    "ns": "nanoseconds are below what a lab can time; write {n}us or more",
}


def parse_duration(text: str) -> float:
    """``'10ms'`` → 0.01 (seconds).  Zero is allowed, negative is not."""
    expected = DURATION_EXPECTED
    quantity = _split(text, expected)
    if quantity.unit == "":
        raise _no_unit(quantity, text, expected, "{n}s or {n}ms")
    if quantity.unit not in DURATION_UNITS:
        hint = _DURATION_HINTS.get(quantity.unit) or _DURATION_HINTS.get(quantity.unit.lower())
        if hint:
            raise UnitError(expected, repr(text), hint.format(n=quantity.number_text))
        raise _unknown_unit(text, expected, quantity.unit, ", ".join(DURATION_UNITS))
    if quantity.number < 0:
        raise _negative(text, expected, "a duration")
    return quantity.number * DURATION_UNITS[quantity.unit]


# ------------------------------------------------------------------------- rates


_AMBIGUOUS_RATE = re.compile(r"^([kmgtKMGT]?)(bps|BPS|Bps|b|bits|bit/sec|bits/sec)$")


def _rate_hint(quantity: _Quantity) -> str | None:
    unit = quantity.unit[:-2] if quantity.unit.endswith("/s") else quantity.unit
    ambiguous = _AMBIGUOUS_RATE.match(unit)
    if ambiguous is None:
        return None
    prefix = ambiguous.group(1).lower()
    bits = f"{quantity.number_text}{prefix}bit".replace("mbit", "Mbit").replace("gbit", "Gbit")
    bits = bits.replace("tbit", "Tbit")
    byte_unit = {"": "B", "k": "kB", "m": "MB", "g": "GB", "t": "TB"}[prefix]
    if ambiguous.group(2) == "b":  # lower-case b is bits (Mb/s); B was handled as bytes
        return f"write {bits} for bits per second"
    if ambiguous.group(2).lower() == "bps":
        return (
            f"{unit!r} is ambiguous (tc reads it as bytes per second, most tools as bits); "
            f"write {bits} for bits per second or {quantity.number_text}{byte_unit}/s "
            "for bytes per second"
        )
    return f"write {bits} for bits per second"


def parse_rate(text: str) -> int:
    """``'2.5Mbit'`` → 2_500_000 (bits per second).  Must be positive."""
    expected = RATE_EXPECTED
    quantity = _split(text, expected)
    if quantity.unit == "":
        if quantity.number >= MIN_RATE_BPS:
            as_bits = format_rate(quantity.number)
            raise UnitError(
                expected,
                f"{text!r} (a number without a unit)",
                f"add a unit: {as_bits} if you meant {quantity.number_text} bits per second",
            )
        raise _no_unit(quantity, text, expected, "{n}Mbit or {n}kbit")
    unit = quantity.unit
    multiplier: int | None = None
    base = unit[:-2] if unit.endswith("/s") else unit
    if base.lower() in BIT_RATE_UNITS:
        multiplier = BIT_RATE_UNITS[base.lower()]
    elif unit.endswith("/s") and base in BYTE_UNITS:
        multiplier = 8 * BYTE_UNITS[base]
    if multiplier is None:
        hint = _rate_hint(quantity)
        if hint is None and unit in BYTE_UNITS:
            hint = f"a byte rate needs '/s': write {quantity.number_text}{unit}/s"
        if hint is None and base in ("KB", "kb", "Kb"):
            hint = f"write {quantity.number_text}kbit or {quantity.number_text}kB/s"
        if hint is not None:
            raise UnitError(expected, repr(text), hint)
        raise _unknown_unit(
            text, expected, unit, "bit, kbit, Mbit, Gbit (optionally /s), or B/s, kB/s, MB/s"
        )
    if quantity.number < 0:
        raise _negative(text, expected, "a rate")
    bits_per_second = round(quantity.number * multiplier)
    if bits_per_second < MIN_RATE_BPS:
        raise UnitError(
            "a positive rate",
            repr(text),
            "the smallest rate tc can shape is 8bit (one byte per second)",
        )
    return bits_per_second


# ------------------------------------------------------------------------- sizes


def _size_hint(quantity: _Quantity) -> str | None:
    unit, n = quantity.unit, quantity.number_text
    if unit in ("KB", "K", "k"):
        return f"{unit!r} is ambiguous: write {n}kB (1000 bytes each) or {n}KiB (1024 bytes each)"
    if unit in ("b", "kb", "Kb", "mb", "Mb", "gb", "Gb"):
        big = unit[:-1].lower().replace("m", "M").replace("g", "G")
        return f"{unit!r} reads as bits; write {n}{big}B for bytes"
    if unit in ("M", "m", "G", "g"):
        return f"write {n}{unit.upper()}B (bytes) or {n}{unit.upper()}iB"
    if unit in ("p", "pk", "pckt", "pkts", "pcks"):
        return f"write {n}pkt"
    if unit in ("bytes", "byte"):
        return f"write {n}B"
    return None


def _whole(value: float, text: str, expected: str, what: str) -> int:
    if not math.isclose(value, round(value), rel_tol=0, abs_tol=1e-9):
        raise UnitError(expected, repr(text), f"{what} must be a whole number")
    return round(value)


def _parse_bytes_quantity(quantity: _Quantity, text: str, expected: str) -> int:
    if quantity.number < 0:
        raise _negative(text, expected, "a size")
    size = _whole(quantity.number * BYTE_UNITS[quantity.unit], text, expected, "a size in bytes")
    if size <= 0:
        raise UnitError(expected, repr(text), "a size must be positive")
    return size


def parse_size(text: str) -> int:
    """``'64kB'`` → 64000 (bytes); ``'64KiB'`` → 65536.  Must be positive."""
    expected = SIZE_EXPECTED
    quantity = _split(text, expected)
    if quantity.unit == "":
        raise _no_unit(quantity, text, expected, "{n}B or {n}kB")
    if quantity.unit not in BYTE_UNITS:
        hint = _size_hint(quantity)
        if hint:
            raise UnitError(expected, repr(text), hint)
        raise _unknown_unit(text, expected, quantity.unit, ", ".join(BYTE_UNITS))
    return _parse_bytes_quantity(quantity, text, expected)


def parse_queue_limit(text: str) -> QueueLimit:
    """``'100pkt'`` → 100 packets; ``'64kB'`` → 64000 bytes."""
    expected = QUEUE_EXPECTED
    quantity = _split(text, expected)
    if quantity.unit == "":
        raise _no_unit(quantity, text, expected, "{n}pkt (packets) or {n}kB (bytes)")
    if quantity.unit in PACKET_UNITS:
        if quantity.number < 0:
            raise _negative(text, expected, "a queue limit")
        packets = _whole(quantity.number, text, expected, "a packet count")
        if packets <= 0:
            raise UnitError(expected, repr(text), "a queue must hold at least 1 packet")
        return QueueLimit(packets=packets)
    if quantity.unit not in BYTE_UNITS:
        hint = _size_hint(quantity)
        if hint:
            raise UnitError(expected, repr(text), hint)
        known = "pkt, " + ", ".join(BYTE_UNITS)
        raise _unknown_unit(text, expected, quantity.unit, known)
    return QueueLimit(bytes=_parse_bytes_quantity(quantity, text, expected))


# ------------------------------------------------------------------- percentages


def parse_percent(text: str) -> float:
    """``'0.5%'`` → 0.005 (a fraction in [0, 1])."""
    expected = PERCENT_EXPECTED
    quantity = _split(text, expected)
    if quantity.unit == "":
        raise UnitError(
            expected,
            f"{text!r} (a number without %)",
            f"write {quantity.number_text}% (the value is a percentage)",
        )
    if quantity.unit != "%":
        raise _unknown_unit(text, expected, quantity.unit, "%")
    if not 0 <= quantity.number <= 100:
        raise UnitError("a percentage between 0% and 100%", repr(text))
    return quantity.number / 100


# ----------------------------------------------------------- patterns for schema


def _alternatives(units: list[str]) -> str:
    return "|".join(re.escape(unit) for unit in sorted(units, key=len, reverse=True))


def _any_case(units: list[str]) -> str:
    """Case-insensitive alternatives without inline flags (JSON Schema regexes are ECMA-262)."""
    return "|".join(
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in unit)
        for unit in sorted(units, key=len, reverse=True)
    )


_UNSIGNED = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
DURATION_PATTERN = rf"^\s*\+?{_UNSIGNED}\s*(?:{_alternatives(list(DURATION_UNITS))})\s*$"
RATE_PATTERN = (
    rf"^\s*\+?{_UNSIGNED}\s*(?:(?:{_any_case(list(BIT_RATE_UNITS))})(?:/s)?"
    rf"|(?:{_alternatives(list(BYTE_UNITS))})/s)\s*$"
)
SIZE_PATTERN = rf"^\s*\+?{_UNSIGNED}\s*(?:{_alternatives(list(BYTE_UNITS))})\s*$"
QUEUE_PATTERN = (
    rf"^\s*\+?{_UNSIGNED}\s*(?:{_alternatives([*PACKET_UNITS, *BYTE_UNITS])})\s*$"
)
PERCENT_PATTERN = rf"^\s*\+?{_UNSIGNED}\s*%\s*$"


# --------------------------------------------------------------------- formatting


def _number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def format_duration(seconds: float) -> str:
    """0.02 → ``'20ms'``: the largest unit (up to seconds) with a value ≥ 1."""
    if seconds == 0:
        return "0s"
    if seconds < 1e-3:
        return f"{_number(seconds * 1e6)}us"
    if seconds < 1:
        return f"{_number(seconds * 1e3)}ms"
    return f"{_number(seconds)}s"


def format_rate(bits_per_second: float) -> str:
    """10_000_000 → ``'10Mbit'`` (parseable back by :func:`parse_rate`)."""
    for unit, scale in (("Gbit", 10**9), ("Mbit", 10**6), ("kbit", 10**3)):
        if bits_per_second >= scale:
            return f"{_number(bits_per_second / scale)}{unit}"
    return f"{_number(bits_per_second)}bit"


def format_size(size_bytes: int) -> str:
    """64000 → ``'64kB'``; sizes that are not round decimal stay in bytes."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size_bytes >= scale and size_bytes % scale == 0:
            return f"{size_bytes // scale}{unit}"
    return f"{size_bytes}B"


def format_queue_limit(limit: QueueLimit) -> str:
    if limit.packets is not None:
        return f"{limit.packets}pkt"
    assert limit.bytes is not None
    return format_size(limit.bytes)


def format_percent(fraction: float) -> str:
    return f"{_number(fraction * 100)}%"
