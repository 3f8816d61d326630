"""The user-space link's direction pipeline on a virtual clock (no sockets, exact times)."""

from __future__ import annotations

import itertools
import math

import pytest

from shaping.spec import LinkShape, QueueLimit
from shaping.userlink.config import DirectionConfig
from shaping.userlink.engine import (
    REASON_QUEUE_HEAD,
    REASON_QUEUE_TAIL,
    REASON_SHUTDOWN,
    DirectionEngine,
)
from shaping.userlink.loss import REASON_LOSS_GILBERT, REASON_LOSS_IID, gilbert_mean_loss

MS = 1_000_000
START = 10**12  # an arbitrary CLOCK_MONOTONIC origin


class Harness:
    """Drives one engine on a virtual clock and keeps what came out."""

    def __init__(self, cfg: DirectionConfig) -> None:
        self.drops: list[tuple[int, int, int, int]] = []
        self.changes: list[tuple[int, int, LinkShape]] = []
        self.out: list[tuple[int, bytes]] = []  # (delivery time, payload)
        self.engine = DirectionEngine(
            cfg,
            START,
            lambda a, s, r, n: self.drops.append((a, s, r, n)),
            lambda s, a, shape: self.changes.append((s, a, shape)),
        )

    def run_until(self, t_ns: int) -> None:
        """Deliver everything due up to ``t_ns``, waking exactly at each event."""
        while True:
            nxt = self.engine.next_event_ns()
            if nxt is None or nxt > t_ns:
                break
            self._deliver(nxt)
        self._deliver(t_ns)

    def _deliver(self, now: int) -> None:
        self.engine.advance(now)
        for due, (_, _, payload) in self.engine.pop_due(now):
            assert due <= now
            self.out.append((due, payload))

    def send(self, t_ns: int, payload: bytes) -> None:
        self.run_until(t_ns)
        self.engine.arrive(t_ns, payload)
        self._deliver(t_ns)


def pkt(i: int, size: int = 1500) -> bytes:
    return i.to_bytes(4, "big") + bytes(size - 4)


def ids(out: list[tuple[int, bytes]]) -> list[int]:
    return [int.from_bytes(p[:4], "big") for _, p in out]


# --- token model ---------------------------------------------------------------


@pytest.mark.parametrize("rate", [1_000_000, 10_000_000, 100_000_000])
def test_token_model_delivers_the_rate_in_whole_frames(rate: int) -> None:
    h = Harness(DirectionConfig(LinkShape(rate_bps=rate, queue=QueueLimit(packets=5000))))
    n = 2000
    for i in range(n):
        h.send(START, pkt(i))
    h.run_until(START + 100 * 10**9)
    assert ids(h.out) == list(range(n))
    times = [t for t, _ in h.out]
    assert times[0] == START  # a full bucket lets the first packet go at once
    gap = (times[-1] - times[0]) / (n - 1)
    expected = 1514 * 8 * 1e9 / rate  # whole Ethernet frame per packet, as tc counts
    assert gap == pytest.approx(expected, rel=1e-6)
    assert max(b - a for a, b in itertools.pairwise(times)) <= math.ceil(expected) + 1


def test_token_model_idle_link_adds_only_delay_and_does_not_bank_credit() -> None:
    h = Harness(DirectionConfig(LinkShape(rate_bps=1_000_000, delay_s=0.020)))
    h.send(START, pkt(0))
    h.send(START + 1000 * MS, pkt(1))  # a long idle gap: the bucket holds one packet only
    h.send(START + 1000 * MS, pkt(2))
    h.run_until(START + 2000 * MS)
    t0, t1, t2 = (t for t, _ in h.out)
    assert t0 == START + 20 * MS
    assert t1 == START + 1020 * MS
    assert t2 - t1 == math.ceil(1514 * 8 * 1e9 / 1e6)  # the next one waits its turn


def test_live_rate_change_keeps_the_queue_and_takes_effect_at_once() -> None:
    h = Harness(DirectionConfig(LinkShape(rate_bps=1_000_000)))
    for i in range(20):
        h.send(START, pkt(i))
    h.run_until(START + 50 * MS)
    before = len(h.out)
    h.engine.change(START + 50 * MS, LinkShape(rate_bps=10_000_000), scheduled_ns=START + 49 * MS)
    h.run_until(START + 1000 * MS)
    assert ids(h.out) == list(range(20))  # nothing flushed
    after = [t for t, _ in h.out[before:]]
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert max(gaps) == pytest.approx(1514 * 8 * 1e9 / 10e6, abs=2)
    assert h.changes[-1][:2] == (START + 49 * MS, START + 50 * MS)


def test_zero_rate_is_an_outage_until_the_rate_returns() -> None:
    h = Harness(DirectionConfig(LinkShape(rate_bps=0)))
    h.send(START, pkt(0))
    h.run_until(START + 5000 * MS)
    assert h.out == []
    h.engine.change(START + 5000 * MS, LinkShape(rate_bps=1_000_000))
    h.run_until(START + 5100 * MS)
    assert len(h.out) == 1


def test_schedule_applies_piecewise_shapes_and_loops() -> None:
    slow = LinkShape(rate_bps=1_000_000, delay_s=0.010)
    fast = LinkShape(rate_bps=10_000_000, delay_s=0.030)
    cfg = DirectionConfig(slow, schedule=((0.0, slow), (0.5, fast)), loop_s=1.0)
    h = Harness(cfg)
    h.run_until(START + 2600 * MS)
    applied = [(s - START) // MS for s, _, _ in h.changes]
    assert applied == [0, 0, 500, 1000, 1500, 2000, 2500]
    h.send(START + 2600 * MS, pkt(0))
    h.run_until(START + 2700 * MS)
    assert h.out[0][0] == START + 2630 * MS  # the fast segment's delay


# --- Mahimahi delivery opportunities -------------------------------------------


def test_mahimahi_opportunities_match_mm_link() -> None:
    # trace lines (ms): two opportunities at 2, one at 4, one at 10; period 10.
    h = Harness(DirectionConfig(LinkShape(), opportunities_ms=(2, 2, 4, 10)))
    for i in range(3):
        h.send(START, pkt(i, 1500))  # 1500 + 4 = one whole opportunity each
    h.run_until(START + 5 * MS)
    assert [((t - START) // MS, i) for (t, _), i in zip(h.out, ids(h.out), strict=True)] == [
        (2, 0),
        (2, 1),
        (4, 2),
    ]
    # Four 500-byte packets (504 charged): 504 + 504 + 496 of the third at 10 ms;
    # the third's last 8 bytes and the fourth go at the next cycle's first line (10 + 2).
    for i in range(3, 7):
        h.send(START + 5 * MS, pkt(i, 500))
    h.run_until(START + 30 * MS)
    got = [((t - START) // MS, i) for (t, _), i in zip(h.out[3:], ids(h.out[3:]), strict=True)]
    assert got == [(10, 3), (10, 4), (12, 5), (12, 6)]


def test_mahimahi_unused_opportunities_are_wasted_and_same_instant_is_burned() -> None:
    h = Harness(DirectionConfig(LinkShape(), opportunities_ms=(1, 2, 3, 4, 5, 100)))
    h.send(START + 2 * MS, pkt(0, 1500))  # the 2 ms opportunity is used up before enqueue
    h.send(START + 2 * MS, pkt(1, 1500))
    h.run_until(START + 50 * MS)
    assert [(t - START) // MS for t, _ in h.out] == [3, 4]
    # idle through the rest of the cycle: nothing banked, next is 100 + 1
    h.send(START + 50 * MS, pkt(2, 1500))
    h.send(START + 50 * MS, pkt(3, 1500))
    h.run_until(START + 300 * MS)
    assert [(t - START) // MS for t, _ in h.out[2:]] == [100, 101]


def test_mahimahi_idle_skip_over_many_periods_is_exact() -> None:
    h = Harness(DirectionConfig(LinkShape(), opportunities_ms=(3, 7)))
    h.send(START + 7_000_004 * MS, pkt(0))  # a million periods later: 7e6+3 burned (< 4)
    h.run_until(START + 7_000_100 * MS)
    assert (h.out[0][0] - START) // MS == 7_000_007


def test_mahimahi_in_transit_packet_does_not_count_against_the_queue() -> None:
    cfg = DirectionConfig(LinkShape(queue=QueueLimit(packets=1)), opportunities_ms=(10, 20))
    h = Harness(cfg)
    h.send(START, pkt(0, 3010))  # 3014 bytes: spans three opportunities
    h.run_until(START + 10 * MS)  # first opportunity: in transit, queue empty again
    h.send(START + 11 * MS, pkt(1, 100))
    h.send(START + 11 * MS, pkt(2, 100))  # queue holds 1: dropped
    h.run_until(START + 100 * MS)
    assert [(t - START) // MS for t, _ in h.out] == [30, 30]
    assert ids(h.out) == [0, 1]
    assert [r for _, _, r, _ in h.drops] == [REASON_QUEUE_TAIL]


# --- queues --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "kept", "reason"),
    [("droptail", [0, 1, 2], REASON_QUEUE_TAIL), ("drophead", [2, 3, 4], REASON_QUEUE_HEAD)],
)
def test_droptail_and_drophead_in_packets(policy: str, kept: list[int], reason: int) -> None:
    shape = LinkShape(rate_bps=0, queue=QueueLimit(packets=3))
    h = Harness(DirectionConfig(shape, queue_policy=policy))  # type: ignore[arg-type]
    for i in range(5):
        h.send(START + i * MS, pkt(i))
    h.engine.change(START + 10 * MS, LinkShape(rate_bps=10_000_000))
    h.run_until(START + 100 * MS)
    assert ids(h.out) == kept
    assert {r for _, _, r, _ in h.drops} == {reason}
    assert len(h.drops) == 2


def test_byte_limit_counts_frame_bytes_not_packets() -> None:
    shape = LinkShape(rate_bps=0, queue=QueueLimit(bytes=3100))
    h = Harness(DirectionConfig(shape))
    for i in range(6):
        h.send(START, pkt(i, 1500 if i < 3 else 40))  # 1514 + 1514 fit, third does not
    h.engine.change(START + MS, LinkShape(rate_bps=10_000_000))
    h.run_until(START + 100 * MS)
    assert ids(h.out) == [0, 1, 3]  # 3028 + 54 = 3082 <= 3100; the next 54 would not fit
    assert len(h.drops) == 3


def test_drophead_byte_limit_can_drop_the_arrival_itself() -> None:
    shape = LinkShape(rate_bps=0, queue=QueueLimit(bytes=1000))
    h = Harness(DirectionConfig(shape, queue_policy="drophead"))
    h.send(START, pkt(0, 100))
    h.send(START, pkt(1, 1500))  # alone exceeds the bound: mahimahi drops it too
    assert [r for _, _, r, _ in h.drops] == [REASON_QUEUE_HEAD, REASON_QUEUE_HEAD]
    assert h.engine.backlog() == 0


def test_shutdown_records_everything_still_held() -> None:
    h = Harness(DirectionConfig(LinkShape(rate_bps=1_000_000, delay_s=0.1)))
    for i in range(5):
        h.send(START, pkt(i))
    h.run_until(START + 20 * MS)
    h.engine.shutdown(START + 20 * MS)
    assert len(h.drops) == 5
    assert {r for _, _, r, _ in h.drops} == {REASON_SHUTDOWN}


# --- loss ----------------------------------------------------------------------


def _lost_pattern(h: Harness, n: int) -> list[bool]:
    for i in range(n):
        h.send(START + i * 10_000, pkt(i, 100))
    h.run_until(START + n * 10_000 + 10 * MS)
    delivered = set(ids(h.out))
    return [i not in delivered for i in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_iid_loss_rate_is_within_binomial_bounds(seed: int) -> None:
    n, p = 20_000, 0.05
    h = Harness(DirectionConfig(LinkShape(loss=p), seed=seed))
    lost = sum(_lost_pattern(h, n))
    sd = math.sqrt(n * p * (1 - p))
    assert abs(lost - n * p) < 4.5 * sd
    assert {r for _, _, r, _ in h.drops} == {REASON_LOSS_IID}


def _mean_burst(lost: list[bool]) -> float:
    bursts, run = [], 0
    for x in lost:
        if x:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    return sum(bursts) / len(bursts)


def test_gilbert_elliott_mean_loss_and_burstiness() -> None:
    gil = (0.01, 0.25, 1.0, 0.0)  # mean loss 0.01 / 0.26, bursts of 1 / r = 4 packets
    n = 100_000
    h = Harness(DirectionConfig(LinkShape(), gilbert=gil, seed=7))
    lost = _lost_pattern(h, n)
    rate = sum(lost) / n
    assert rate == pytest.approx(gilbert_mean_loss(gil), rel=0.1)
    assert _mean_burst(lost) == pytest.approx(1 / 0.25, rel=0.15)
    assert {r for _, _, r, _ in h.drops} == {REASON_LOSS_GILBERT}
    iid = Harness(DirectionConfig(LinkShape(loss=rate), seed=7))
    assert _mean_burst(_lost_pattern(iid, n)) < 1.2  # same mean, no bursts


# --- delay and jitter ----------------------------------------------------------


def _jittered(reorder: bool) -> Harness:
    shape = LinkShape(delay_s=0.010, jitter_s=0.005)
    h = Harness(DirectionConfig(shape, reorder=reorder, seed=3))
    for i in range(2000):
        h.send(START + i * 100_000, pkt(i, 100))  # one every 0.1 ms, far below 5 ms jitter
    h.run_until(START + 1000 * MS)
    return h


def test_jitter_without_reorder_keeps_order_and_spreads_delay() -> None:
    h = _jittered(reorder=False)
    assert ids(h.out) == list(range(2000))
    delays = [(t - START - i * 100_000) / MS for (t, _), i in zip(h.out, ids(h.out), strict=True)]
    assert min(delays) >= 5.0 and max(delays) <= 15.0
    assert max(delays) - min(delays) > 3.0


def test_jitter_reorders_when_asked() -> None:
    h = _jittered(reorder=True)
    order = ids(h.out)
    assert sorted(order) == list(range(2000))
    inversions = sum(1 for a, b in itertools.pairwise(order) if b < a)
    assert inversions > 100
    delays = [(t - START - i * 100_000) / MS for (t, _), i in zip(h.out, order, strict=True)]
    assert min(delays) >= 5.0 and max(delays) <= 15.0
    assert sum(delays) / len(delays) == pytest.approx(10.0, abs=0.3)
