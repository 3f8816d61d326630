"""The kernel replay schedule, checked against a model of htb's token accounting.

Deterministic and fast; the real qdisc is checked in test_agreement_backends.py
and, over the whole corpus, by bench/replay.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shaping.replay import build_schedule
from shaping.replay.htbmodel import backlogged_departures
from shaping.replay.schedule import RAMP_STEP_S
from shaping.spec import LinkShape, QueueLimit
from shaping.traces import Trace, load_trace

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 20.0
BASE = LinkShape(queue=QueueLimit(packets=100))


def _bin_errors(trace: Trace, departures: np.ndarray, frame_bytes: int) -> np.ndarray:
    edges = np.arange(0.0, SECONDS + 1e-9, 0.5)
    sent, _ = np.histogram(departures, edges)
    opportunities = np.asarray(trace.opportunities_ms) / 1000.0
    asked, _ = np.histogram(opportunities, edges)
    keep = asked > 0
    errors: np.ndarray = sent[keep] * frame_bytes / (asked[keep] * 1504.0) - 1
    return errors


@pytest.mark.parametrize("name", ["tmobile-lte-short.down", "verizon-lte-short.up"])
@pytest.mark.parametrize("frame_bytes", [1200, 1514])
def test_lte_replay_keeps_each_bins_capacity(name: str, frame_bytes: int) -> None:
    trace = load_trace(str(ROOT / "traces" / "cellular" / name))
    errors = _bin_errors(trace, backlogged_departures(build_schedule(trace, BASE), frame_bytes,
                                                      SECONDS), frame_bytes)
    assert np.mean(np.abs(errors)) < 0.03
    assert np.all(np.abs(errors) < 0.5)  # no stalled bin


def test_ten_ms_bins_lose_capacity_to_htb_debt() -> None:
    """Why the default bin is 50 ms: at 10 ms, smaller frames spill into faster bins."""
    trace = load_trace(str(ROOT / "traces" / "cellular" / "tmobile-lte-short.down"))
    fine = build_schedule(trace, BASE, granularity_s=0.01, min_step_bits=1504 * 8)
    coarse = build_schedule(trace, BASE)
    fine_mape = np.mean(np.abs(_bin_errors(trace, backlogged_departures(fine, 1200, SECONDS),
                                           1200)))
    coarse_mape = np.mean(np.abs(_bin_errors(
        trace, backlogged_departures(coarse, 1200, SECONDS), 1200)))
    assert coarse_mape < fine_mape / 2


@pytest.mark.parametrize("gap_s", [0.1, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("rate_mbps", [1, 10, 50])
@pytest.mark.parametrize("frame_bytes", [300, 1514])
def test_outages_deliver_nothing_and_resume_at_their_end(gap_s: float, rate_mbps: int,
                                                        frame_bytes: int) -> None:
    """Mahimahi's semantics: nothing in the gap, delivery from its first opportunity on.
    htb lets out the frame it holds tokens for when the gap starts and one in the
    ramp's last 10 ms, but neither may hold the link past the gap's end."""
    per_ms = rate_mbps * 1e6 / (1504 * 8) / 1000
    stamps = [int(t) for t in range(1, 2001)
              for _ in range(int(t * per_ms) - int((t - 1) * per_ms))]
    gap_ms = round(gap_s * 1000)
    stamps = [t for t in stamps if t <= 1000] + [t + gap_ms for t in stamps if t > 1000]
    trace = Trace.from_opportunities(stamps)
    departures = backlogged_departures(build_schedule(trace, BASE), frame_bytes, 1.5 + gap_s)
    in_gap = departures[(departures > 1.0) & (departures < 1.0 + gap_s)]
    resumed = departures[departures >= 1.0 + gap_s]
    if gap_s >= 0.1:  # an outage (shorter gaps are folded into the next delivery)
        assert len(in_gap) * frame_bytes <= 8 * 1514  # a few frames leak, small ones more
        assert resumed[0] - (1.0 + gap_s) < RAMP_STEP_S + 0.001
    after = resumed[resumed < 1.5 + gap_s]
    bits = len(after) * frame_bytes * 8
    assert bits == pytest.approx(rate_mbps * 1e6 * 0.5, rel=0.05)
