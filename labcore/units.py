"""The one unit grammar: durations, rates, sizes, packet counts and percentages.

Scenario files, CLI options, trace tools and the endpoints' own command lines
all parse through here, so a spelling accepted in one place is accepted in
every other and means the same thing.  Everything downstream works in
seconds, bits per second, bytes, packets and fractions.

Grammar (a number, optional spaces, a unit; ``1e3`` exponents are allowed):

* Durations: ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``min``, ``h``.
* Rates are bits per second: ``bit``, ``kbit``, ``Mbit``, ``Gbit``, ``Tbit``
  (case-insensitive, as tc writes ``mbit``, optionally followed by ``/s``) and
  ``bps``, ``kbps``, ``Mbps``, ``Gbps``, ``Tbps`` (the prefix in any case,
  ``bps`` in lower case).  ``kbps`` is kilo*bits* per second, as Mahimahi,
  OpenNetLab and most papers mean it (netlab never hands unit text to tc,
  which would read it as bytes).  Byte rates need ``/s``: ``B/s``, ``kB/s``,
  ``MB/s``, ``GB/s``, ``KiB/s``, ``MiB/s``, ``GiB/s``; ``MBps``/``KBps`` are
  refused because the capital B says bytes and ``bps`` says bits.  Prefixes
  are decimal (k = 1000) except ``Ki``/``Mi``/``Gi``.
* Sizes: ``B``, ``kB`` (1000 B), ``MB``, ``GB``, ``KiB`` (1024 B), ``MiB``,
  ``GiB``; ``KB`` is refused as ambiguous (1000 or 1024?) and ``kb``/``Mb`` as
  bits.  Packet counts (and queue limits, which may instead be a size):
  ``100pkt`` (also ``pkts``, ``packet``, ``packets``).
* Percentages: ``0.5%`` is the fraction 0.005.

A bare number is refused (is ``1`` one percent or certainty, ``60`` seconds or
milliseconds?) unless the caller names the unit it is read in (``bare="s"``):
the endpoints' command lines, which netlab itself writes, take seconds and
bit/s that way.  Errors are :class:`UnitError` (a
:class:`~labcore.errors.LabError` and a ``ValueError``) with what was
expected, what was found and, where one helps, the fix.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from labcore.errors import LabError

T = TypeVar("T")

DURATION_EXPECTED = "a duration such as 10ms or 1.5s"
RATE_EXPECTED = "a rate such as 10Mbit or 800kbit"
SIZE_EXPECTED = "a size such as 1500B or 64kB"
QUEUE_EXPECTED = "a queue limit such as 100pkt or 64kB"
PACKETS_EXPECTED = "a packet count such as 100pkt"
PERCENT_EXPECTED = "a percentage such as 0.5%"

DURATION_UNITS: Mapping[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 MICRO SIGN
    "μs": 1e-6,  # U+03BC GREEK SMALL LETTER MU (what most keyboards give)
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
# ``<prefix>bps``: the prefix in any case, ``bps`` lower-case.
BPS_UNITS: Mapping[str, int] = {"bps": 1, "kbps": 10**3, "mbps": 10**6, "gbps": 10**9,
                                "tbps": 10**12}
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

_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*(\S*)\s*$")
_BPS = re.compile(r"^[kKmMgGtT]?bps$")


@dataclass(frozen=True)
class QueueLimit:
    """A droptail queue bound, in packets or in bytes (exactly one is set)."""

    packets: int | None = None
    bytes: int | None = None

    def __post_init__(self) -> None:
        if (self.packets is None) == (self.bytes is None):
            raise ValueError("QueueLimit needs exactly one of packets or bytes")


class UnitError(LabError, ValueError):
    """A unit string that does not parse: ``expected`` says what would.

    ``found`` describes the offending text and ``hint`` (optional) says how
    to write it correctly; they become the error's what and fix (without a
    hint the fix repeats what is expected).  ``where``
    (the option or field) is set by the caller that knows it.
    """

    def __init__(self, expected: str, found: str, hint: str | None = None, *,
                 where: str | None = None) -> None:
        super().__init__(f"expected {expected}, found {found}", where=where,
                         fix=hint or f"write {expected}")
        self.expected = expected
        self.found = found
        self.hint = hint

    def __str__(self) -> str:
        message = f"{self.what}; {self.hint}" if self.hint else self.what
        return f"{self.where}: {message}" if self.where else message


@contextmanager
def _at(where: str | None) -> Iterator[None]:
    try:
        yield
    except UnitError as exc:
        if where is not None and exc.where is None:
            exc.where = where
        raise


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
    if not abs(number) <= MAX_NUMBER:
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
    "nsec": "write {n}ns",
    "mins": "write {n}min",
    "minute": "write {n}min",
    "minutes": "write {n}min",
    "hr": "write {n}h",
    "hour": "write {n}h",
    "hours": "write {n}h",
}


def parse_duration(text: str, *, bare: str | None = None, where: str | None = None) -> float:
    """``'10ms'`` → 0.01 (seconds).  Zero is allowed, negative is not.

    ``bare`` is the unit a number without one is read in (None: refused).
    """
    with _at(where):
        expected = DURATION_EXPECTED
        quantity = _split(text, expected)
        unit = quantity.unit or bare
        if unit is None:
            raise _no_unit(quantity, text, expected, "{n}s or {n}ms")
        if unit not in DURATION_UNITS:
            hint = _DURATION_HINTS.get(unit) or _DURATION_HINTS.get(unit.lower())
            if hint:
                raise UnitError(expected, repr(text), hint.format(n=quantity.number_text))
            raise _unknown_unit(text, expected, unit, ", ".join(DURATION_UNITS))
        if quantity.number < 0:
            raise _negative(text, expected, "a duration")
        return quantity.number * DURATION_UNITS[unit]


# ------------------------------------------------------------------------- rates


_BIT_SPELLINGS = re.compile(r"^([kmgtKMGT]?)(b|bits|bit/sec|bits/sec|b/sec)$")
_BYTE_BPS = re.compile(r"^([kmgtKMGT]?)(?i:bps)$")


def _prefixed(prefix: str, unit: str) -> str:
    return {"": "", "k": "k", "m": "M", "g": "G", "t": "T"}[prefix.lower()] + unit


def _rate_hint(quantity: _Quantity) -> str | None:
    unit, n = quantity.unit, quantity.number_text
    base = unit[:-2] if unit.endswith("/s") else unit
    if _BPS.match(base):  # "Mbps/s"
        return f"'bps' already means per second: write {n}{base}"
    ambiguous = _BYTE_BPS.match(base)
    if ambiguous is not None:
        prefix = ambiguous.group(1)
        byte_unit = "kB" if prefix.lower() == "k" else _prefixed(prefix, "B")
        return (
            f"{unit!r} is ambiguous (a capital B means bytes, bps means bits); write "
            f"{n}{_prefixed(prefix, 'bit')} for bits per second or {n}{byte_unit}/s "
            "for bytes per second"
        )
    if base in ("k", "K", "M", "m", "G", "g", "T", "t"):  # the endpoints' old '300k'
        return f"write {n}{_prefixed(base, 'bit')} for bits per second"
    spelled = _BIT_SPELLINGS.match(base)
    if spelled is not None:
        return f"write {n}{_prefixed(spelled.group(1), 'bit')} for bits per second"
    if unit in BYTE_UNITS:
        return f"a byte rate needs '/s': write {n}{unit}/s"
    if base in ("KB", "Kb"):
        return f"write {n}kbit or {n}kB/s"
    return None


def _rate_multiplier(unit: str) -> int | None:
    if _BPS.match(unit):
        return BPS_UNITS[unit.lower()]
    base = unit[:-2] if unit.endswith("/s") else unit
    if base.lower() in BIT_RATE_UNITS:
        return BIT_RATE_UNITS[base.lower()]
    if unit.endswith("/s") and base in BYTE_UNITS:
        return 8 * BYTE_UNITS[base]
    return None


def parse_rate(text: str, *, bare: str | None = None, allow_zero: bool = False,
               where: str | None = None) -> int:
    """``'2.5Mbit'`` → 2_500_000 (bits per second), at least 8 bit/s.

    ``bare`` is the unit a number without one is read in (None: refused);
    ``allow_zero`` admits a zero rate (an outage in a trace).
    """
    with _at(where):
        expected = RATE_EXPECTED
        quantity = _split(text, expected)
        unit = quantity.unit or bare
        if unit is None:
            if allow_zero and quantity.number == 0:
                return 0
            n = quantity.number_text
            if quantity.number >= 1000:
                as_bits = format_rate(quantity.number)
                hint = f"add a unit: {as_bits} if you meant {n} bits per second"
            else:
                hint = f"add a unit, e.g. {n}Mbit or {n}kbit"
            raise UnitError(expected, f"{text!r} (a number without a unit)", hint)
        multiplier = _rate_multiplier(unit)
        if multiplier is None:
            spelling = _rate_hint(quantity)
            if spelling is not None:
                raise UnitError(expected, repr(text), spelling)
            raise _unknown_unit(text, expected, unit,
                                "bit, kbit, Mbit, Gbit (optionally /s), bps, kbps, Mbps, Gbps, "
                                "or B/s, kB/s, MB/s")
        if quantity.number < 0:
            raise _negative(text, expected, "a rate")
        bits_per_second = round(quantity.number * multiplier)
        if allow_zero and bits_per_second == 0:
            return 0
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


def _parse_packets_quantity(quantity: _Quantity, text: str, expected: str) -> int:
    if quantity.number < 0:
        raise _negative(text, expected, "a packet count")
    packets = _whole(quantity.number, text, expected, "a packet count")
    if packets <= 0:
        raise UnitError(expected, repr(text), "a queue must hold at least 1 packet")
    return packets


def parse_size(text: str, *, where: str | None = None) -> int:
    """``'64kB'`` → 64000 (bytes); ``'64KiB'`` → 65536.  Must be positive."""
    with _at(where):
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


def parse_packets(text: str, *, where: str | None = None) -> int:
    """``'100pkt'`` → 100 (packets).  A whole number, at least 1."""
    with _at(where):
        expected = PACKETS_EXPECTED
        quantity = _split(text, expected)
        if quantity.unit == "":
            raise _no_unit(quantity, text, expected, "{n}pkt")
        if quantity.unit not in PACKET_UNITS:
            hint = _size_hint(quantity)
            if hint and "pkt" in hint:
                raise UnitError(expected, repr(text), hint)
            raise _unknown_unit(text, expected, quantity.unit, ", ".join(PACKET_UNITS))
        return _parse_packets_quantity(quantity, text, expected)


def parse_queue_limit(text: str, *, where: str | None = None) -> QueueLimit:
    """``'100pkt'`` → 100 packets; ``'64kB'`` → 64000 bytes."""
    with _at(where):
        expected = QUEUE_EXPECTED
        quantity = _split(text, expected)
        if quantity.unit == "":
            raise _no_unit(quantity, text, expected, "{n}pkt (packets) or {n}kB (bytes)")
        if quantity.unit in PACKET_UNITS:
            return QueueLimit(packets=_parse_packets_quantity(quantity, text, expected))
        if quantity.unit not in BYTE_UNITS:
            hint = _size_hint(quantity)
            if hint:
                raise UnitError(expected, repr(text), hint)
            known = "pkt, " + ", ".join(BYTE_UNITS)
            raise _unknown_unit(text, expected, quantity.unit, known)
        return QueueLimit(bytes=_parse_bytes_quantity(quantity, text, expected))


# ------------------------------------------------------------------- percentages


def parse_percent(text: str, *, where: str | None = None) -> float:
    """``'0.5%'`` → 0.005 (a fraction in [0, 1])."""
    with _at(where):
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


# ------------------------------------------------------------ command-line options


def option(parse: Callable[..., T], **settings: Any) -> Callable[[str], T]:
    """``parse`` as an argparse ``type=``: a UnitError becomes argparse's usage error.

    (argparse turns a plain ValueError into "invalid value" and drops the message.)
    """

    def convert(text: str) -> T:
        try:
            return parse(text, **settings)
        except UnitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


# ----------------------------------------------------------- patterns for schema


def _alternatives(units: list[str]) -> str:
    return "|".join(re.escape(unit) for unit in sorted(units, key=len, reverse=True))


def _any_case(units: list[str]) -> str:
    """Case-insensitive alternatives without inline flags (JSON Schema regexes are ECMA-262)."""
    return "|".join(
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in unit)
        for unit in sorted(units, key=len, reverse=True)
    )


_UNSIGNED = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
DURATION_PATTERN = rf"^\s*\+?{_UNSIGNED}\s*(?:{_alternatives(list(DURATION_UNITS))})\s*$"
RATE_PATTERN = (
    rf"^\s*\+?{_UNSIGNED}\s*(?:(?:{_any_case(list(BIT_RATE_UNITS))})(?:/s)?"
    rf"|[kKmMgGtT]?bps"
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
