"""A netem leaf holds every packet in flight for its delay: that is not a backlog.

Under htb, netem's delay line counts in the tree's backlog, so a link carrying
less than its capacity looked backlogged whenever a packet was in flight, and
its delivered rate (what the sender offered) was judged against the capacity.
Measured across VMs: a 1.5 Mbit/s flow on a 3 Mbit/s, 25 ms link read as the
link delivering half its capacity.
"""

from __future__ import annotations

import numpy as np

from shaping.fidelity import kernel_bins, step_series
from shaping.fidelity.capacity import bin_edges, delay_line_bytes
from shaping.replay.log import CHANGE_DTYPE, SAMPLE_DTYPE

START = 5_000_000_000


def _samples(rate_bps: float, backlog_bytes: int, seconds: float = 2.0) -> np.ndarray:
    t = START + 5_000_000 + np.arange(int(seconds * 100)) * 10_000_000
    samples = np.zeros(len(t), dtype=SAMPLE_DTYPE)
    samples["t_ns"] = t
    samples["bytes"] = np.cumsum(np.full(len(t), rate_bps / 8 * 0.01)).astype(np.int64)
    samples["backlog_bytes"] = backlog_bytes
    samples["backlog_packets"] = max(1, backlog_bytes // 1250)
    return samples


def _changes(rate_bps: int, delay_s: float, jitter_s: float = 0.0) -> np.ndarray:
    changes = np.zeros(1, dtype=CHANGE_DTYPE)
    changes["scheduled_ns"] = changes["called_ns"] = changes["applied_ns"] = START
    changes["rate_bps"], changes["delay_s"], changes["jitter_s"] = rate_bps, delay_s, jitter_s
    return changes


def test_the_delay_line_is_rate_times_delay_and_jitter() -> None:
    held = delay_line_bytes(_changes(3_000_000, 0.025, 0.005))
    assert held.at([START])[0] == 3_000_000 * 0.030 / 8  # 11250 bytes
    assert delay_line_bytes(_changes(-1, 0.025)).at([START])[0] == 0.0  # unshaped: none


def test_packets_in_flight_are_not_a_backlog() -> None:
    # 1.5 Mbit/s offered to a 3 Mbit/s link with 25 ms of netem delay: ~4.7 kB in flight
    samples = _samples(1.5e6, backlog_bytes=4700)
    edges = bin_edges(START + 5_000_000, int(samples["t_ns"][-1]))
    asked = step_series([START], [3e6])
    in_flight = delay_line_bytes(_changes(3_000_000, 0.025))
    assert kernel_bins(samples, asked, edges).counted.all()  # the old reading: "backlogged"
    assert not kernel_bins(samples, asked, edges, in_flight=in_flight).counted.any()


def test_a_standing_queue_beyond_the_delay_line_is_a_backlog() -> None:
    samples = _samples(3e6, backlog_bytes=60_000)  # the 60-packet queue, full
    edges = bin_edges(START + 5_000_000, int(samples["t_ns"][-1]))
    in_flight = delay_line_bytes(_changes(3_000_000, 0.025))
    bins = kernel_bins(samples, step_series([START], [3e6]), edges, in_flight=in_flight)
    assert bins.counted.all()
    assert bins.mape() is not None and bins.mape() < 0.01
    # no delay: any queued packet is a backlog, as before
    no_delay = delay_line_bytes(_changes(3_000_000, 0.0))
    small = _samples(3e6, backlog_bytes=1500)
    assert kernel_bins(small, step_series([START], [3e6]), edges, in_flight=no_delay).counted.all()
