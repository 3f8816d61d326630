"""What a trace offered over an interval: the capacity-normalised score's denominator."""

from __future__ import annotations

import dataclasses

import pytest

from shaping.traces import Trace


def test_mean_capacity_integrates_segments_loops_and_holds() -> None:
    trace = Trace(times_s=(0.0, 1.0, 2.0), rates_bps=(1e6, 2e6, 0.0), period_s=3.0)
    assert trace.mean_capacity_bps(0.0, 3.0) == pytest.approx(trace.mean_rate_bps())
    assert trace.mean_capacity_bps(0.5, 1.5) == pytest.approx(1.5e6)
    assert trace.mean_capacity_bps(2.5, 3.5) == pytest.approx(0.5e6)  # loops into 1 Mbit/s
    assert trace.mean_capacity_bps(3.0, 9.0) == pytest.approx(1e6)
    held = dataclasses.replace(trace, loop=False)
    assert held.mean_capacity_bps(2.5, 4.5) == 0.0  # Genet holds the last value
    assert trace.mean_capacity_bps(1.2, 1.2) == 2e6
    assert trace.bits_until(2.0) == pytest.approx(3e6)
