"""Percentiles, loss with reordering and duplicates, rate bins."""

from __future__ import annotations

import numpy as np
import pytest

from endpoints.metrics.delay import one_way_delay_ms, percentiles
from endpoints.metrics.loss import loss_from_sequences, unwrap_sequence
from endpoints.metrics.series import hold_values, mean_rate_bps, rate_series, rebin


def test_percentiles_linear_interpolation() -> None:
    result = percentiles(np.arange(1, 101))
    assert result == {"p50": pytest.approx(50.5), "p95": pytest.approx(95.05),
                      "p99": pytest.approx(99.01)}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}
    assert percentiles([3.0, float("nan")], (50,)) == {"p50": 3.0}


def test_one_way_delay_skips_unstamped_packets() -> None:
    delays = one_way_delay_ms([0, -1, 5_000_000], [20_000_000, 30_000_000, 7_500_000])
    assert delays.tolist() == [20.0, 2.5]


def test_loss_with_reordering_and_duplicates() -> None:
    arrivals = [1, 2, 4, 3, 3, 5, 7]
    stats = loss_from_sequences(arrivals)  # gaps only: 1..7 expected, 6 missing
    assert (stats.expected, stats.received, stats.lost) == (7, 6, 1)
    assert stats.duplicates == 1
    assert stats.reordered == 1  # 3 after 4; its duplicate is not a second reorder
    assert stats.loss == pytest.approx(1 / 7)
    with_sent = loss_from_sequences(arrivals, sent=range(1, 9))  # 8 also never came
    assert (with_sent.expected, with_sent.lost) == (8, 2)
    assert with_sent.loss == pytest.approx(0.25)
    assert loss_from_sequences([]).loss == 0.0


def test_unwrap_across_the_16_bit_wrap() -> None:
    assert unwrap_sequence([65534, 65535, 1, 0, 2]).tolist() == [65534, 65535, 65537,
                                                                 65536, 65538]
    stats = loss_from_sequences(unwrap_sequence([65534, 65535, 1, 0, 3]))
    assert (stats.lost, stats.reordered) == (1, 1)


def test_rate_bins() -> None:
    series = rate_series([0, 5_000_000, 10_000_000], [1000, 1000, 1000], bin_ns=10_000_000)
    assert series.rate_bps.tolist() == [1.6e6, 0.8e6]
    assert series.bin_start_ns.tolist() == [0, 10_000_000]
    windowed = rate_series([0, 25_000_000], [1000, 1000], bin_ns=10_000_000,
                           start_ns=0, end_ns=40_000_000)
    assert windowed.rate_bps.tolist() == [0.8e6, 0.0, 0.8e6, 0.0]  # outage bins are zeros
    coarse = rebin(np.arange(10) * 10_000_000, np.full(10, 125), bin_ns=50_000_000)
    assert coarse.rate_bps.tolist() == [100_000.0, 100_000.0]
    assert mean_rate_bps([0, 1, 2_000_000_000], [500, 500, 999], 0, 1_000_000_000) == 8000.0


def test_hold_values() -> None:
    held = hold_values([10, 20], [1.0, 2.0], [5, 10, 15, 25])
    assert np.isnan(held[0])
    assert held[1:].tolist() == [1.0, 1.0, 2.0]
