"""The internal trace form: lookups, looping, binning that conserves bytes."""

from __future__ import annotations

import random

import pytest

from shaping.traces import MAHIMAHI_PACKET_BYTES, Trace

PACKET_BITS = MAHIMAHI_PACKET_BYTES * 8


def _steps() -> Trace:
    return Trace(
        times_s=(0.0, 1.0, 3.0),
        rates_bps=(1e6, 0.0, 4e6),
        period_s=4.0,
        delays_s=(0.01, 0.02, 0.03),
        losses=(0.0, 0.5, 0.1),
    )


def test_capacity_at_follows_segments_and_loops() -> None:
    trace = _steps()
    assert trace.capacity_at(0.0) == 1e6
    assert trace.capacity_at(0.999) == 1e6
    assert trace.capacity_at(1.0) == 0.0
    assert trace.capacity_at(3.5) == 4e6
    assert trace.capacity_at(4.0) == 1e6  # second period
    assert trace.capacity_at(9.5) == 0.0  # 9.5 mod 4 = 1.5
    assert trace.segment_at(5.2).delay_s == 0.02


def test_non_looping_trace_holds_last_value() -> None:
    trace = Trace(times_s=(0.0, 1.0), rates_bps=(5e6, 2e6), period_s=2.0, loop=False)
    assert trace.capacity_at(1.5) == 2e6
    assert trace.capacity_at(100.0) == 2e6
    assert trace.capacity_at(0.5) == 5e6


def test_segments_mean_and_outage() -> None:
    trace = _steps()
    segments = list(trace.segments())
    assert [(s.start_s, s.end_s) for s in segments] == [(0.0, 1.0), (1.0, 3.0), (3.0, 4.0)]
    assert segments[1].loss == 0.5
    assert trace.mean_rate_bps() == pytest.approx((1e6 * 1 + 4e6 * 1) / 4)
    assert trace.outage_fraction() == pytest.approx(0.5)


@pytest.mark.parametrize(
    "bad",
    [
        {"times_s": (0.5,), "rates_bps": (1.0,), "period_s": 1.0},
        {"times_s": (0.0, 2.0), "rates_bps": (1.0, 1.0), "period_s": 1.0},
        {"times_s": (0.0, 0.0), "rates_bps": (1.0, 1.0), "period_s": 1.0},
        {"times_s": (0.0,), "rates_bps": (-1.0,), "period_s": 1.0},
        {"times_s": (0.0,), "rates_bps": (1.0,), "period_s": 1.0, "losses": (2.0,)},
        {"times_s": (0.0,), "rates_bps": (1.0,), "period_s": 1.0, "delays_s": (1.0, 2.0)},
    ],
)
def test_invalid_traces_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Trace(**bad)  # type: ignore[arg-type]


def test_opportunities_rate_follows_mahimahi_rule() -> None:
    # 3 packets at 1 ms, 1 at 2 ms, 2 at the period end (4 ms): 6 packets / 4 ms.
    trace = Trace.from_opportunities([1, 1, 1, 2, 4, 4])
    assert trace.period_s == pytest.approx(0.004)
    assert trace.mean_rate_bps() == pytest.approx(6 * PACKET_BITS / 0.004)
    # Timestamp t delivers at the end of millisecond [t-1, t).
    assert trace.capacity_at(0.0005) == pytest.approx(3 * PACKET_BITS * 1000)
    assert trace.capacity_at(0.0015) == pytest.approx(1 * PACKET_BITS * 1000)
    assert trace.capacity_at(0.0025) == 0.0
    assert trace.capacity_at(0.0035) == pytest.approx(2 * PACKET_BITS * 1000)
    # Timestamp 0 is the period end's instant.
    wrapped = Trace.from_opportunities([0, 0, 2])
    assert wrapped.capacity_at(0.0015) == pytest.approx(3 * PACKET_BITS * 1000)


def _random_trace(rng: random.Random) -> Trace:
    count = rng.randint(1, 40)
    starts = sorted({0.0, *(round(rng.uniform(0.001, 9.0), 4) for _ in range(count - 1))})
    rates = [rng.choice([0.0, rng.uniform(0, 50e6)]) for _ in starts]
    return Trace(
        times_s=tuple(starts),
        rates_bps=tuple(rates),
        period_s=round(rng.uniform(starts[-1] + 0.01, 12.0), 4),
        losses=tuple(rng.uniform(0, 1) for _ in starts),
    )


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("granularity", [0.001, 0.01, 0.1, 0.37, 1.0, 50.0])
def test_binned_conserves_bytes_for_piecewise(seed: int, granularity: float) -> None:
    trace = _random_trace(random.Random(seed))
    binned = trace.binned(granularity)
    assert binned.period_s == trace.period_s
    assert binned.total_bits() == pytest.approx(trace.total_bits(), rel=1e-9, abs=1e-3)
    widths = [s.duration_s for s in binned.segments()]
    assert all(w <= granularity + 1e-9 for w in widths)
    assert binned.losses is not None and all(0 <= v <= 1 for v in binned.losses)
    # Each bin carries exactly what the original carries in that bin.
    for segment in list(binned.segments())[:50]:
        expected = _bits_between(trace, segment.start_s, segment.end_s)
        assert segment.rate_bps * segment.duration_s == pytest.approx(expected, rel=1e-9, abs=1e-3)


def _bits_between(trace: Trace, start: float, end: float) -> float:
    total = 0.0
    for segment in trace.segments():
        overlap = min(end, segment.end_s) - max(start, segment.start_s)
        if overlap > 0:
            total += overlap * segment.rate_bps
    return total


def test_binned_mahimahi_bin_rate_is_opportunities_times_1504_bytes() -> None:
    rng = random.Random(3)
    stamps = [*sorted(rng.randint(0, 2000) for _ in range(3000)), 2000]
    trace = Trace.from_opportunities(stamps)
    binned = trace.binned(0.1)
    assert binned.opportunities_ms is None
    assert binned.total_bits() == pytest.approx(len(stamps) * PACKET_BITS)
    segments = list(binned.segments())
    assert len(segments) == 20
    for index, segment in enumerate(segments):
        low, high = index * 100, (index + 1) * 100  # ms bin [low, high): timestamps low+1..high
        packets = sum(1 for t in stamps if low < t <= high)
        if index == len(segments) - 1:
            packets += sum(1 for t in stamps if t == 0)  # 0 is the period end's instant
        assert segment.rate_bps == pytest.approx(packets * PACKET_BITS / 0.1)


def test_merged_joins_equal_neighbours() -> None:
    trace = Trace(times_s=(0.0, 1.0, 2.0, 3.0), rates_bps=(5.0, 5.0, 7.0, 7.0), period_s=4.0)
    merged = trace.merged()
    assert merged.times_s == (0.0, 2.0)
    assert merged.total_bits() == trace.total_bits()
