"""The htb check: which traces the kernel backend can replay as Mahimahi would.

Crafted Mahimahi traces: a 1 s outage on the replay's 50 ms grid, and a
160 ms gap 20 ms into a step, are both kept whole (the schedule cuts its
steps at a gap's ends; nothing is delivered inside); a bursty trace (20
packets at once every 200 ms) is not: htb would spread each burst over the
gaps around it.  Deterministic (the htb model, no clock).
"""

from __future__ import annotations

from pathlib import Path

from shaping.replay import build_schedule
from shaping.replay.representable import GAP_LEAK_FRAMES, check_htb, zero_stretches
from shaping.spec import LinkShape, QueueLimit
from shaping.traces import Trace, load_trace

ROOT = Path(__file__).resolve().parents[2]
BASE = LinkShape(queue=QueueLimit(packets=100))


def gap_trace(rate_mbps: float, gap_at_ms: int, gap_ms: int, total_ms: int = 4000) -> Trace:
    """Constant ``rate_mbps`` of delivery opportunities with one gap of ``gap_ms``."""
    per_ms = rate_mbps * 1e6 / (1504 * 8) / 1000
    stamps = [t for t in range(1, total_ms + 1)
              for _ in range(int(t * per_ms) - int((t - 1) * per_ms))]
    return Trace.from_opportunities([t for t in stamps if t <= gap_at_ms]
                                    + [t + gap_ms for t in stamps if t > gap_at_ms])


def test_an_outage_on_the_replay_grid_is_representable() -> None:
    check = check_htb(gap_trace(5, 1500, 1000), BASE, 5.0)
    assert check.representable
    assert check.gaps == 1 and not check.leaky
    assert check.mape is not None and check.mape < 0.01
    assert check.reason().startswith("htb: trace representable (model: 7 bins of 500 ms over 5 s")


def test_a_gap_off_the_replay_grid_is_kept_whole() -> None:
    trace = gap_trace(5, 1020, 160)
    check = check_htb(trace, BASE, 5.0)
    assert check.representable and check.gaps == 1 and not check.leaky
    (gap,) = zero_stretches(trace, 5.0)
    times = [c.t_s for c in build_schedule(trace, BASE).changes]
    assert gap[0] in times and gap[1] in times  # the outage is cut at its own ends


def bursty_trace() -> Trace:
    """20 packets in one millisecond every 200 ms (1.2 Mbit/s on average)."""
    return Trace.from_opportunities([t for k in range(200, 6001, 200) for t in [k] * 20])


def test_a_bursty_trace_is_not_representable() -> None:
    check = check_htb(bursty_trace(), BASE, 5.0)
    assert not check.representable
    assert not check.within_bins and check.leaky
    assert all(leak.frames > GAP_LEAK_FRAMES for leak in check.leaky)
    reason = check.reason()
    assert reason.startswith("htb: trace not representable: a 500 ms bin would miss the "
                             "trace by more than 5 % (worst ")
    first = check.leaky[0]
    assert (f"{len(check.leaky)} of {check.gaps} gap(s) would carry frames, first the "
            f"{first.length_s * 1000:.0f} ms gap at {first.t_s:.2f} s ({first.frames} frames "
            "where Mahimahi delivers none)") in reason


def test_a_rate_trace_whose_bins_htb_misses_is_not_representable() -> None:
    """OpenNetLab's 4G 3 Mbit/s trace: 200 ms steps with outages between bursts."""
    trace = load_trace(str(ROOT / "traces" / "opennetlab" / "medium" / "4g-3mbps.json"))
    check = check_htb(trace, BASE, 25.0)
    assert not check.representable and not check.within_bins
    assert check.worst_bin_error is not None and abs(check.worst_bin_error) > 0.05
    assert "a 500 ms bin would miss the trace by more than 5 %" in check.reason()


def test_zero_stretches_loop_with_the_trace() -> None:
    trace = gap_trace(5, 1500, 1000)  # period 5 s: the gap again at 6.5 s
    stretches = zero_stretches(trace, 8.0)
    assert [round(s, 3) for s, _ in stretches] == [1.5, 6.5]
    assert all(0.99 < e - s < 1.01 for s, e in stretches)
