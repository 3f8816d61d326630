"""Probing: the controller's rules, the cluster estimate, the prober's pacing, and
GCC's ramp-up with and without probes on a simulated bottleneck."""

from __future__ import annotations

import pytest

from endpoints.rtc.gcc import SendSideBwe
from endpoints.rtc.gcc.probe_bitrate import ProbeBitrateEstimator
from endpoints.rtc.gcc.probe_controller import ProbeController, ProbingState
from endpoints.rtc.pacer import Pacer
from endpoints.rtc.probing import BitrateProber, ProbeCluster
from endpoints.rtc.rtp import RtpPacket
from endpoints.rtc.twcc import PacketResult

PACKET = 1200


class Bottleneck:
    """FIFO at ``capacity_bps`` with a base delay; ``arrival`` per packet (pure)."""

    def __init__(self, capacity_bps: float, base_delay_us: int = 25_000) -> None:
        self.capacity_bps = capacity_bps
        self.base_delay_us = base_delay_us
        self._free_us = 0.0

    def arrival(self, send_us: int, size: int) -> int:
        start = max(float(send_us), self._free_us)
        self._free_us = start + size * 8e6 / self.capacity_bps
        return int(self._free_us) + self.base_delay_us


# ---- controller -------------------------------------------------------------------------


def test_controller_starts_at_3x_and_6x_and_probes_further_while_results_rise() -> None:
    controller = ProbeController(max_bitrate_bps=30e6)
    first = controller.start(300_000, now_ms=0)
    assert [c.rate_bps for c in first] == [900_000, 1_800_000]
    assert controller.state is ProbingState.WAITING_FOR_RESULT
    assert controller.min_bitrate_to_probe_further_bps == pytest.approx(0.7 * 1_800_000)
    assert controller.start(300_000, now_ms=10) == []  # only once
    # 1.2 Mbit/s is below 0.7 x 1.8 Mbit/s: the link is found, no further probe.
    assert controller.set_estimated_bitrate(1_200_000, now_ms=300) == []
    # 1.7 Mbit/s is above it: probe at 2x.
    further = controller.set_estimated_bitrate(1_700_000, now_ms=350)
    assert [c.rate_bps for c in further] == [3_400_000]
    assert len({c.id for c in [*first, *further]}) == 3


def test_periodic_probe_at_2x_after_a_quiet_interval_held_off_by_a_decrease() -> None:
    controller = ProbeController(max_bitrate_bps=30e6, periodic_interval_ms=2_000)
    controller.start(300_000, now_ms=0)
    assert controller.process(1_500) == []  # gives up waiting; not due yet
    assert controller.state is ProbingState.COMPLETE
    controller.set_estimated_bitrate(1_000_000, now_ms=1_600)
    controller.on_overuse(1_900)  # an overuse decrease
    assert controller.process(2_100) == []  # due by the last probe, but the cut was recent
    periodic = controller.process(3_950)
    assert [c.rate_bps for c in periodic] == [2_000_000]
    assert controller.state is ProbingState.WAITING_FOR_RESULT  # it may probe further
    assert controller.process(4_000) == []  # one at a time

    off = ProbeController(max_bitrate_bps=30e6, periodic_interval_ms=0)
    off.start(300_000, now_ms=0)
    assert off.process(10_000) == [] and off.process(60_000) == []
    with pytest.raises(ValueError):
        ProbeController(max_bitrate_bps=30e6, periodic_interval_ms=-1)


def test_controller_gives_up_after_a_second_and_caps_at_the_maximum() -> None:
    controller = ProbeController(max_bitrate_bps=30e6)
    controller.start(300_000, now_ms=0)
    states = []
    for now_ms in (999.0, 1_001.0):
        controller.process(now_ms)
        states.append(controller.state)
    assert states == [ProbingState.WAITING_FOR_RESULT, ProbingState.COMPLETE]
    assert controller.set_estimated_bitrate(10e6, now_ms=1_100) == []

    capped = ProbeController(max_bitrate_bps=1_000_000)
    clusters = capped.start(300_000, now_ms=0)
    assert [c.rate_bps for c in clusters] == [900_000, 1_000_000]
    assert capped.state is ProbingState.COMPLETE  # a capped probe does not probe further


# ---- cluster estimate -------------------------------------------------------------------


def _cluster_results(cluster: ProbeCluster, link: Bottleneck, count: int,
                     size: int = 1000) -> list[PacketResult]:
    gap_us = size * 8e6 / cluster.rate_bps
    return [PacketResult(i, int(i * gap_us), size, link.arrival(int(i * gap_us), size))
            for i in range(count)]


def test_probe_estimate_is_the_send_rate_on_an_idle_link() -> None:
    cluster = ProbeCluster(1, 900_000, 0)
    estimator = ProbeBitrateEstimator()
    results = _cluster_results(cluster, Bottleneck(10e6), count=6)
    estimates = [estimator.on_probe_result(r, cluster) for r in results]
    assert estimates[:3] == [None, None, None]  # fewer than 80 % of 5 probes and bytes
    assert estimates[-1] == pytest.approx(900_000, rel=0.02)
    assert estimator.fetch_and_reset() == estimates[-1]
    assert estimator.fetch_and_reset() is None


def test_probe_estimate_is_95_percent_of_the_receive_rate_on_a_saturated_link() -> None:
    cluster = ProbeCluster(2, 1_800_000, 0)
    estimator = ProbeBitrateEstimator()
    results = _cluster_results(cluster, Bottleneck(1e6), count=6)
    estimate = None
    for result in results:
        estimate = estimator.on_probe_result(result, cluster) or estimate
    assert estimate == pytest.approx(0.95 * 1e6, rel=0.03)


def test_probe_estimate_rejects_receive_faster_than_twice_the_send_rate() -> None:
    cluster = ProbeCluster(3, 1_000_000, 0)
    estimator = ProbeBitrateEstimator()
    # Sent over 40 ms, all arrived within 4 ms (e.g. released from a stalled queue).
    results = [PacketResult(i, i * 8_000, 1000, 100_000 + i * 800) for i in range(6)]
    assert all(estimator.on_probe_result(r, cluster) is None for r in results)


# ---- prober and pacer ---------------------------------------------------------------------


def test_prober_paces_a_cluster_at_its_rate_and_finishes_it() -> None:
    prober = BitrateProber()
    cluster = ProbeCluster(1, 1_600_000, 0)  # min 3000 bytes in 15 ms, 5 probes
    prober.add(cluster, 0)
    assert prober.recommended_min_probe_size() == 800  # 2 x 2 ms at 1.6 Mbit/s
    now = 0
    times = []
    while prober.active:
        due = prober.next_probe_time_us(now)
        assert due is not None
        now = max(now, due)
        times.append(now)
        prober.on_probe_sent(now, 800)
    assert len(times) == 5  # 5 probes of 800 B cover both minimums
    assert times == [0, 4_000, 8_000, 12_000, 16_000]  # 800 B at 1.6 Mbit/s = 4 ms
    assert prober.clusters_sent == 1
    assert prober.next_probe_time_us(now) is None


def test_prober_drops_clusters_that_waited_too_long() -> None:
    prober = BitrateProber()
    prober.add(ProbeCluster(1, 1e6, created_us=0), 0)
    prober.add(ProbeCluster(2, 1e6, created_us=5_500_000), 5_500_000)
    current = prober.current
    assert current is not None and current.id == 2


def test_pacer_probe_sends_queued_video_first_then_asks_for_padding() -> None:
    pacer = Pacer(300_000)
    assert pacer.process_probe(0) is None  # nothing to probe
    pacer.enqueue(RtpPacket(96, 1, 0, 1, payload=bytes(300)), 0)
    pacer.add_probe_cluster(ProbeCluster(1, 1_800_000, 0), 0)  # 900 B per probe
    due = pacer.process_probe(0)
    assert due is not None
    cluster, media, padding = due
    assert cluster.id == 1
    assert [p.sequence_number for p in media] == [1]
    assert padding == 900 - media[0].size
    pacer.on_probe_sent(0, 900)
    assert pacer.process_probe(1_000) is None  # next probe due at 4 ms
    assert pacer.process_probe(4_000) is not None


def test_while_probing_every_packet_leaves_in_a_probe_audio_first() -> None:
    """libwebrtc tags every packet sent while a cluster is active with that cluster:
    media sent beside the probe, untagged, would take bottleneck time the probe's
    receive rate does not count."""
    pacer = Pacer(1_000_000)
    pacer.enqueue(RtpPacket(96, 1, 0, 1, payload=bytes(1000)), 0)
    pacer.enqueue(RtpPacket(111, 7, 0, 2, payload=bytes(100)), 0, audio=True)
    pacer.add_probe_cluster(ProbeCluster(1, 8_000_000, 0), 0)  # 4000 B per probe
    assert pacer.process(0) == []  # the regular tick leaves the queue to the probe
    due = pacer.process_probe(0)
    assert due is not None
    _cluster, media, padding = due
    assert [p.sequence_number for p in media] == [7, 1]
    assert padding == 4000 - sum(p.size for p in media)
    for _ in range(5):  # finish the cluster (5 probes of 4000 B = 20 kB >= 15 ms at 8 Mbit/s)
        pacer.on_probe_sent(0, 4000)
    pacer.enqueue(RtpPacket(96, 2, 0, 1, payload=bytes(1000)), 0)
    assert [p.sequence_number for p in pacer.process(5_000)] == [2]


# ---- closed loop ----------------------------------------------------------------------------


def ramp(capacity_bps: float, seconds: float, *, probing: bool,
         periodic_interval_ms: float = 0.0,
         steps: tuple[tuple[float, float], ...] = ()) -> list[tuple[int, float]]:
    """GCC against a bottleneck: media paced at the target, probe clusters as asked;
    ``steps``: (second, new capacity) changes of the bottleneck."""
    link = Bottleneck(capacity_bps)
    bwe = SendSideBwe(300_000, periodic_probe_interval_ms=periodic_interval_ms)
    clusters = bwe.start_probing(0) if probing else []
    pending_steps = list(steps)
    seq = 0
    now = 0
    next_media = 0.0
    pending: list[PacketResult] = []
    log = []
    while now < seconds * 1e6:
        feedback_at = now + 50_000
        while pending_steps and pending_steps[0][0] * 1e6 <= now:
            link.capacity_bps = pending_steps.pop(0)[1]
        for cluster in clusters:  # each cluster as 1000-byte packets at its rate
            count = max(cluster.min_probes, -(-cluster.min_bytes // 1000))
            gap = 1000 * 8e6 / cluster.rate_bps
            for i in range(count):
                send = now + int(i * gap)
                pending.append(PacketResult(seq, send, 1000, link.arrival(send, 1000)))
                bwe.on_probe_sent(seq, cluster)
                seq += 1
        clusters = []
        while next_media < feedback_at:
            send = int(next_media)
            pending.append(PacketResult(seq, send, PACKET, link.arrival(send, PACKET)))
            seq += 1
            next_media += PACKET * 8e6 / bwe.target_bps
        now = feedback_at
        ready = [r for r in pending if r.arrival_time_us is not None and r.arrival_time_us <= now]
        pending = [r for r in pending if r not in ready]
        bwe.on_feedback(ready, now)
        if probing:
            clusters = bwe.take_probe_clusters()
        log.append((now, bwe.target_bps))
    return log


def _first_time_at(log: list[tuple[int, float]], level: float) -> float | None:
    return next((t / 1e6 for t, target in log if target >= level), None)


def test_probing_finds_a_1_mbit_link_within_a_second() -> None:
    with_probes = ramp(1e6, 3.0, probing=True)
    reached = _first_time_at(with_probes, 0.85e6)
    assert reached is not None and reached < 1.0
    assert max(target for _, target in with_probes) < 1.2e6  # it did not overshoot
    without = ramp(1e6, 3.0, probing=False)
    assert _first_time_at(without, 0.85e6) is None  # 8 %/s from 300 kbit/s


def test_further_probes_climb_to_a_3_mbit_link() -> None:
    log = ramp(3e6, 3.0, probing=True)
    reached = _first_time_at(log, 0.85 * 3e6)
    assert reached is not None and reached < 1.5


def test_periodic_probes_find_a_mid_call_step_up_within_seconds() -> None:
    """1 -> 3 Mbit/s at 10 s: the AIMD alone (libwebrtc camera stream) is still far
    below after 5 s; a periodic probe every 2 s reaches 85 % of it within 3 s."""
    step = ((10.0, 3e6),)
    with_periodic = ramp(1e6, 16.0, probing=True, periodic_interval_ms=2_000, steps=step)
    without = ramp(1e6, 16.0, probing=True, periodic_interval_ms=0, steps=step)
    after = [(t, rate) for t, rate in with_periodic if t >= 10e6]
    reached = _first_time_at(after, 0.85 * 3e6)
    assert reached is not None and reached - 10.0 < 3.0
    assert max(rate for t, rate in without if 10e6 <= t <= 15e6) < 0.85 * 3e6
    # Before the step the periodic probes found nothing more and did not push it past
    # the 1 Mbit/s link for long.
    before = [rate for t, rate in with_periodic if 3e6 <= t < 10e6]
    assert sum(rate > 1.2e6 for rate in before) / len(before) < 0.1
