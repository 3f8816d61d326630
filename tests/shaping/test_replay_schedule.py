"""Schedules built from hand-made traces: merging, overlaying, binning, outages, deadlines."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from shaping.replay import Schedule, build_schedule, constant_steps
from shaping.replay.schedule import Change
from shaping.spec import LinkShape, QueueLimit
from shaping.traces import Trace

BASE = LinkShape(delay_s=0.02, queue=QueueLimit(packets=50))
#: 10 ms bins of at least one packet (the defaults are coarser, see schedule.py).
FINE: dict[str, Any] = {"granularity_s": 0.01, "min_step_bits": 1504 * 8}


def rates(schedule: Schedule) -> list[int | None]:
    return [c.shape.rate_bps for c in schedule.changes]


def test_equal_neighbours_merge_and_base_shape_is_kept() -> None:
    trace = Trace(times_s=(0.0, 1.0, 2.0, 3.0), rates_bps=(5e6, 5e6, 2e6, 2e6), period_s=4.0)
    schedule = build_schedule(trace, BASE)
    assert [c.t_s for c in schedule.changes] == [0.0, 2.0]
    assert rates(schedule) == [5_000_000, 2_000_000]
    assert all(c.shape.delay_s == 0.02 and c.shape.queue == BASE.queue for c in schedule.changes)
    assert schedule.period_s == 4.0 and schedule.loop


def test_trace_delay_and_loss_replace_the_base() -> None:
    trace = Trace(times_s=(0.0, 1.0), rates_bps=(1e6, 1e6), period_s=2.0,
                  delays_s=(0.01, 0.05), losses=(0.0, 0.02), loop=False)
    schedule = build_schedule(trace, BASE)
    assert [(c.shape.delay_s, c.shape.loss) for c in schedule.changes] == [(0.01, 0.0),
                                                                         (0.05, 0.02)]
    assert not schedule.loop
    assert build_schedule(trace, BASE, loop=True).loop


def test_queue_defaults_to_one_bdp_of_the_mean_rate_not_the_first_bin() -> None:
    trace = Trace(times_s=(0.0, 1.0), rates_bps=(0.0, 20e6), period_s=2.0)
    queue = build_schedule(trace, LinkShape()).first_shape.queue
    assert queue is not None and queue.bytes is not None
    assert queue.bytes == pytest.approx(10e6 / 8 * 0.1, rel=0.01)  # 100 ms at the 10 Mbit/s mean


def _total_bits(schedule: Schedule) -> float:
    times = np.array([c.t_s for c in schedule.changes] + [schedule.period_s])
    values = np.array(rates(schedule), dtype=float)
    return float(np.dot(values, np.diff(times)))


def test_opportunities_are_binned_at_the_granularity_keeping_every_bit() -> None:
    # 3 packets in each of the first 10 ms, then 1 per 10 ms, period 100 ms.
    stamps = [1, 2, 3, 15, 25, 35, 45, 55, 65, 75, 85, 95, 100]
    trace = Trace.from_opportunities(stamps)
    schedule = build_schedule(trace, LinkShape(queue=QueueLimit(packets=10)), **FINE)
    assert schedule.changes[0].shape.rate_bps == round(3 * 1504 * 8 / 0.01)
    assert all(round(c.t_s * 1000) % 10 == 0 for c in schedule.changes)
    assert _total_bits(schedule) == pytest.approx(trace.total_bits(), rel=1e-6)
    coarse = build_schedule(trace, LinkShape(queue=QueueLimit(packets=10)), granularity_s=0.05)
    assert all(round(c.t_s * 1000) % 50 == 0 for c in coarse.changes)


def test_short_gaps_fold_into_the_next_delivery_and_long_gaps_are_outages() -> None:
    # 10 ms bins: 2 pkts, gap of 20 ms, 1 pkt, gap of 309 ms, 4 pkts ... period 400 ms.
    stamps = [5, 5, 35, 345, 345, 345, 345, 400]
    trace = Trace.from_opportunities(stamps)
    schedule = build_schedule(trace, LinkShape(queue=QueueLimit(packets=10)), **FINE)
    starts = [round(c.t_s * 1000) for c in schedule.changes]
    packet_bits = 1504 * 8
    # The outage is cut at its own ends (35 and 344 ms: each opportunity counts in
    # the millisecond before it), not at the grid's: the 20 ms gap before it folds
    # into its one packet, spread up to the outage's start.
    assert starts[:3] == [0, 10, 35]
    assert schedule.changes[1].shape.rate_bps == round(packet_bits / 0.025)  # gap folded in
    # The outage is a ramp of ~10 ms steps: each step's rate is one full frame
    # over the time left after it, so no frame leaving during it holds htb's
    # tokens past its end.
    ramp = [c for c in schedule.changes if 0.035 <= c.t_s < 0.344]
    assert len(ramp) >= 25
    frame_bits = 1514 * 8
    for change, after in itertools.pairwise(ramp):
        assert change.shape.rate_bps == pytest.approx(frame_bits / (0.344 - after.t_s), abs=2)
    # The last two steps carry the same rate (one frame over the last step) and merge.
    assert ramp[-1].shape.rate_bps == pytest.approx(2 * frame_bits / (0.344 - ramp[-1].t_s),
                                                    rel=0.01)
    assert schedule.changes[len(ramp) + 2].t_s == pytest.approx(0.344)  # resumes at its end
    # Without coalescing the zero bins stay (tc would install 1 kbit/s there).
    raw = build_schedule(trace, LinkShape(queue=QueueLimit(packets=10)), granularity_s=0.01,
                         min_step_bits=None)
    assert 0 in rates(raw)


def test_deadlines_are_absolute_and_loop() -> None:
    schedule = constant_steps([1, 2, 3], 0.01, LinkShape())
    times = []
    for scheduled, index, shape in schedule.deadlines_ns(1_000):
        times.append((scheduled, index, shape.rate_bps))
        if len(times) == 7:
            break
    assert times[0] == (1_000, 0, 1)
    assert times[3] == (1_000 + 30_000_000, 0, 1)
    assert times[6] == (1_000 + 60_000_000, 0, 1)
    once = Schedule(schedule.changes, schedule.period_s, loop=False)
    assert len(list(once.deadlines_ns(0))) == 3


def test_bad_schedules_are_refused() -> None:
    shape = LinkShape(rate_bps=1)
    with pytest.raises(ValueError, match="first change"):
        Schedule((Change(0.5, shape),), 1.0, True)
    with pytest.raises(ValueError, match="increase"):
        Schedule((Change(0.0, shape), Change(0.0, shape)), 1.0, True)
    with pytest.raises(ValueError, match="period"):
        Schedule((Change(0.0, shape), Change(1.0, shape)), 1.0, True)
    with pytest.raises(ValueError, match="granularity"):
        build_schedule(Trace.constant(1e6, 1.0), shape, granularity_s=0)
