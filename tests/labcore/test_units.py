"""labcore.units: every accepted spelling, the rejected ambiguous ones, and round trips.

One grammar serves scenario files, CLI options and the endpoints' command lines.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labcore import units
from labcore.errors import LabError
from labcore.units import UnitError
from shaping.spec import QueueLimit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10ms", 0.01),
        ("1.5s", 1.5),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("500μs", 0.0005),
        ("250ns", 250e-9),
        ("1e3ms", 1.0),
        ("2min", 120.0),
        ("1h", 3600.0),
        ("0ms", 0.0),
        (" 20 ms ", 0.02),
        (".5s", 0.5),
        ("+3s", 3.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "bits_per_second"),
    [
        ("10Mbit", 10_000_000),
        ("2.5Mbit", 2_500_000),
        ("800kbit", 800_000),
        ("800kbit/s", 800_000),
        ("10mbit", 10_000_000),  # tc's spelling
        ("1Gbit", 10**9),
        ("64bit", 64),
        ("1.25MB/s", 10_000_000),
        ("1KiB/s", 8192),
        ("100B/s", 800),
        ("10Mbps", 10_000_000),  # bps is bits per second, as Mahimahi and papers write it
        ("10mbps", 10_000_000),
        ("800kbps", 800_000),
        ("800Kbps", 800_000),
        ("1Gbps", 10**9),
        ("100bps", 100),
        ("2e6bit", 2_000_000),
    ],
)
def test_rates(text: str, bits_per_second: int) -> None:
    assert units.parse_rate(text) == bits_per_second


@pytest.mark.parametrize("text", ["10MBps", "800KBps", "100Bps", "10 MBPS"])
def test_capital_b_bps_is_rejected_as_ambiguous_with_both_readings(text: str) -> None:
    with pytest.raises(UnitError) as caught:
        units.parse_rate(text)
    assert caught.value.hint is not None
    assert "ambiguous" in caught.value.hint
    assert "bit for bits per second" in caught.value.hint
    assert "B/s for bytes per second" in caught.value.hint


def test_bps_per_second_says_bps_already_means_per_second() -> None:
    with pytest.raises(UnitError, match="already means per second: write 10Mbps"):
        units.parse_rate("10 Mbps/s")


def test_bare_numbers_take_the_callers_unit() -> None:
    """Endpoint command lines (written by netlab) give seconds and bit/s bare."""
    assert units.parse_duration("1.5", bare="s") == 1.5
    assert units.parse_duration("200ms", bare="s") == pytest.approx(0.2)
    assert units.parse_rate("300000", bare="bit") == 300_000
    assert units.parse_rate("0", allow_zero=True) == 0
    assert units.parse_rate("0Mbit", allow_zero=True) == 0
    with pytest.raises(UnitError):
        units.parse_rate("0")


def test_errors_are_the_one_base_with_what_where_fix() -> None:
    with pytest.raises(LabError) as caught:
        units.parse_rate("10", where="--min-bw")
    error = caught.value
    assert isinstance(error, UnitError) and isinstance(error, ValueError)
    assert error.render() == (
        "error: expected a rate such as 10Mbit or 800kbit, found '10' (a number without a unit)\n"
        "  where: --min-bw\n"
        "  fix: add a unit, e.g. 10Mbit or 10kbit")
    assert str(error).startswith("--min-bw: expected a rate")


def test_option_turns_unit_errors_into_argparse_usage_errors() -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--duration", type=units.option(units.parse_duration, bare="s"))
    assert parser.parse_args(["--duration", "30"]).duration == 30.0
    with pytest.raises(argparse.ArgumentError, match="write 5min or 5ms"):
        parser.parse_args(["--duration", "5m"])


@pytest.mark.parametrize(("text", "packets"), [("100pkt", 100), ("1packet", 1), ("3 pkts", 3)])
def test_packet_counts(text: str, packets: int) -> None:
    assert units.parse_packets(text) == packets


@pytest.mark.parametrize("text", ["100", "1.5pkt", "0pkt", "64kB", "10p"])
def test_bad_packet_counts(text: str) -> None:
    with pytest.raises(UnitError):
        units.parse_packets(text)


@pytest.mark.parametrize(
    ("text", "hint_part"),
    [
        ("-5Mbit", "cannot be negative"),
        ("0Mbit", "smallest rate"),
        ("1bit", "smallest rate"),
        ("10MB", "needs '/s'"),
        ("10Mb/s", "write 10Mbit"),
        ("10Mbits", "write 10Mbit"),
        ("10000000", "10Mbit if you meant"),
        ("300k", "write 300kbit"),
        ("2.5M", "write 2.5Mbit"),
        ("fast", None),
        ("10 furlongs", "unknown unit"),
    ],
)
def test_bad_rates(text: str, hint_part: str | None) -> None:
    with pytest.raises(UnitError) as caught:
        units.parse_rate(text)
    if hint_part is None:
        assert caught.value.hint is None
    else:
        assert hint_part in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("text", "size"),
    [("1500B", 1500), ("64kB", 64_000), ("64KiB", 65_536), ("1MB", 10**6), ("1.5kB", 1500),
     ("2MiB", 2 * 2**20), ("1GB", 10**9)],
)
def test_sizes(text: str, size: int) -> None:
    assert units.parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "hint_part"),
    [("64KB", "ambiguous"), ("64kb", "reads as bits"), ("0B", "positive"), ("1.5B", "whole"),
     ("-1kB", "negative"), ("100", "add a unit"), ("100pkt", "unknown unit")],
)
def test_bad_sizes(text: str, hint_part: str) -> None:
    with pytest.raises(UnitError) as caught:
        units.parse_size(text)
    assert hint_part in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("text", "limit"),
    [("100pkt", QueueLimit(packets=100)), ("1packet", QueueLimit(packets=1)),
     ("64kB", QueueLimit(bytes=64_000)), ("150KiB", QueueLimit(bytes=153_600))],
)
def test_queue_limits(text: str, limit: QueueLimit) -> None:
    assert units.parse_queue_limit(text) == limit


@pytest.mark.parametrize("text", ["1.5pkt", "0pkt", "-3pkt", "100", "64KB", "10p"])
def test_bad_queue_limits(text: str) -> None:
    with pytest.raises(UnitError):
        units.parse_queue_limit(text)


@pytest.mark.parametrize(("text", "fraction"), [("0.5%", 0.005), ("0%", 0.0), ("100%", 1.0)])
def test_percentages(text: str, fraction: float) -> None:
    assert units.parse_percent(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["0.5", "150%", "-1%", "1 percent", "%"])
def test_bad_percentages(text: str) -> None:
    with pytest.raises(UnitError):
        units.parse_percent(text)


@pytest.mark.parametrize(("text", "hint_part"), [("60", "60s or 60ms"), ("5m", "5min or 5ms"),
                                                 ("10 sec", "write 10s"), ("-1ms", "negative")])
def test_bad_durations(text: str, hint_part: str) -> None:
    with pytest.raises(UnitError) as caught:
        units.parse_duration(text)
    assert hint_part in (caught.value.hint or "")


# ------------------------------------------------------------------ properties

_magnitudes = st.decimals(min_value="0.001", max_value="100000", places=3)


@given(_magnitudes, st.sampled_from(sorted(units.DURATION_UNITS)))
def test_any_written_duration_parses_to_number_times_unit(number: object, unit: str) -> None:
    text = f"{number}{unit}"
    expected = float(str(number)) * units.DURATION_UNITS[unit]
    assert math.isclose(units.parse_duration(text), expected, rel_tol=1e-12)
    assert re.match(units.DURATION_PATTERN, text)


@given(st.integers(min_value=8, max_value=10**12))
def test_rate_format_round_trips(bits_per_second: int) -> None:
    text = units.format_rate(bits_per_second)
    assert re.match(units.RATE_PATTERN, text)
    assert math.isclose(units.parse_rate(text), bits_per_second, rel_tol=1e-6)


@given(st.floats(min_value=0, max_value=10**6, allow_nan=False))
def test_duration_format_round_trips(seconds: float) -> None:
    text = units.format_duration(seconds)
    assert math.isclose(units.parse_duration(text), seconds, rel_tol=1e-6, abs_tol=1e-9)


@given(st.integers(min_value=1, max_value=10**12))
def test_size_format_round_trips_exactly(size: int) -> None:
    assert units.parse_size(units.format_size(size)) == size
    assert units.parse_queue_limit(units.format_size(size)) == QueueLimit(bytes=size)


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
def test_percent_format_round_trips(fraction: float) -> None:
    assert math.isclose(
        units.parse_percent(units.format_percent(fraction)), fraction, abs_tol=1e-8
    )


@given(st.text(alphabet="0123456789.+-eE kKmMgGbBitps/%µμusnhq", max_size=10))
def test_schema_patterns_accept_everything_the_parsers_accept(text: str) -> None:
    """The editor schema's regexes may not reject what the validator accepts."""
    for parse, pattern in (
        (units.parse_duration, units.DURATION_PATTERN),
        (units.parse_rate, units.RATE_PATTERN),
        (units.parse_size, units.SIZE_PATTERN),
        (units.parse_queue_limit, units.QUEUE_PATTERN),
        (units.parse_percent, units.PERCENT_PATTERN),
    ):
        try:
            parse(text)
        except UnitError:
            continue
        assert re.match(pattern, text), (text, pattern)


@given(st.text(max_size=12))
def test_parsers_raise_only_unit_errors(text: str) -> None:
    for parse in (units.parse_duration, units.parse_rate, units.parse_size,
                  units.parse_queue_limit, units.parse_percent):
        with contextlib.suppress(UnitError):
            parse(text)
