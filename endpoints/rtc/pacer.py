"""Pacer: releases queued RTP packets at a multiple of the target rate.

After libwebrtc's PacingController in periodic mode: every 5 ms a media
budget grows by pacing_rate × elapsed (capped at 500 ms worth, and, as in
IntervalBudget without build-up, unused budget is not saved); video packets
go out while the budget is positive and each one spends its size, so
frames leave as short bursts spread over the frame interval instead of one
line-rate burst. The pacing rate is 2.5 × the target (libwebrtc's default
pace multiplier). Audio is not held back (libwebrtc does not pace audio by
default) but spends budget. If the queue would not drain within 2 s of its
packets' average enqueue time (libwebrtc's kMaxExpectedQueueLength), the
rate is raised to the one that drains it by then.

Probe clusters (:mod:`endpoints.rtc.probing`) are paced apart from the
budget: when :meth:`Pacer.process_probe` finds a probe due it hands out
queued audio and video up to the prober's recommended probe size and says
how many bytes of padding should complete it (libwebrtc's PacingController
sends media first and generates padding for the rest while probing); the
caller reports what it sent with :meth:`Pacer.on_probe_sent`. While a
cluster is active, :meth:`Pacer.process` sends nothing: every packet leaves
in a probe, as libwebrtc tags every packet sent while probing with the
cluster. Media sent beside a probe but outside it would share the
bottleneck with it uncounted, and the probe would measure less than the
link carries.

Clock injected: ``process(now_us)`` returns the packets to send now.
"""

from __future__ import annotations

from collections import deque

from endpoints.rtc.probing import BitrateProber, ProbeCluster
from endpoints.rtc.rtp import RtpPacket

DEFAULT_PACING_FACTOR = 2.5
DEFAULT_PROCESS_INTERVAL_US = 5_000
BUDGET_WINDOW_US = 500_000
MAX_EXPECTED_QUEUE_US = 2_000_000


class Pacer:
    def __init__(self, target_bps: float, *, pacing_factor: float = DEFAULT_PACING_FACTOR,
                 process_interval_us: int = DEFAULT_PROCESS_INTERVAL_US) -> None:
        if pacing_factor <= 0:
            raise ValueError("pacing_factor must be positive")
        self.pacing_factor = pacing_factor
        self.process_interval_us = process_interval_us
        self.pacing_rate_bps = pacing_factor * target_bps
        self._budget_bytes = 0.0
        self._last_process_us: int | None = None
        self._audio: deque[tuple[RtpPacket, int]] = deque()  # (packet, enqueue µs)
        self._video: deque[tuple[RtpPacket, int]] = deque()
        self._queued_bytes = 0
        self._enqueue_time_sum_us = 0
        self.prober = BitrateProber()

    def set_target(self, target_bps: float) -> None:
        self.pacing_rate_bps = self.pacing_factor * max(0.0, target_bps)

    def enqueue(self, packet: RtpPacket, now_us: int, *, audio: bool = False) -> None:
        (self._audio if audio else self._video).append((packet, now_us))
        self._queued_bytes += packet.size
        self._enqueue_time_sum_us += now_us

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def queued_packets(self) -> int:
        return len(self._audio) + len(self._video)

    def effective_rate_bps(self, now_us: int) -> float:
        """The pacing rate, raised if needed to drain the queue in time."""
        if not self.queued_packets:
            return self.pacing_rate_bps
        average_wait_us = now_us - self._enqueue_time_sum_us / self.queued_packets
        time_left_us = max(1_000.0, MAX_EXPECTED_QUEUE_US - average_wait_us)
        drain_rate = self._queued_bytes * 8 * 1_000_000 / time_left_us
        return max(self.pacing_rate_bps, drain_rate)

    def next_process_time_us(self) -> int:
        if self._last_process_us is None:
            return 0
        return self._last_process_us + self.process_interval_us

    def add_probe_cluster(self, cluster: ProbeCluster, now_us: int) -> None:
        self.prober.add(cluster, now_us)

    def next_probe_time_us(self, now_us: int) -> int | None:
        return self.prober.next_probe_time_us(now_us)

    def process_probe(self, now_us: int) -> tuple[ProbeCluster, list[RtpPacket], int] | None:
        """If a probe is due: (its cluster, queued video to send in it, padding bytes to add)."""
        due = self.prober.next_probe_time_us(now_us)
        cluster = self.prober.current
        if due is None or cluster is None or now_us < due:
            return None
        wanted = self.prober.recommended_min_probe_size()
        rate = self.effective_rate_bps(now_us)
        media: list[RtpPacket] = []
        size = 0
        for queue in (self._audio, self._video):
            while queue and size < wanted:
                packet = self._pop(queue, rate)
                media.append(packet)
                size += packet.size
        return cluster, media, max(0, wanted - size)

    def on_probe_sent(self, now_us: int, size: int) -> None:
        self.prober.on_probe_sent(now_us, size)

    def process(self, now_us: int) -> list[RtpPacket]:
        rate = self.effective_rate_bps(now_us)
        if self._last_process_us is None:
            elapsed_us = self.process_interval_us
        else:
            elapsed_us = max(0, now_us - self._last_process_us)
        self._last_process_us = now_us
        self._increase_budget(rate, elapsed_us)
        out: list[RtpPacket] = []
        if self.prober.active:
            return out  # media leaves in the probes (process_probe)
        while self._audio:
            out.append(self._pop(self._audio, rate))
        while self._video and self._budget_bytes > 0:
            out.append(self._pop(self._video, rate))
        return out

    def _increase_budget(self, rate_bps: float, elapsed_us: int) -> None:
        max_bytes = rate_bps / 8 * BUDGET_WINDOW_US / 1e6
        grant = rate_bps / 8 * elapsed_us / 1e6
        if self._budget_bytes < 0:
            self._budget_bytes = min(self._budget_bytes + grant, max_bytes)  # pay off debt
        else:
            self._budget_bytes = min(grant, max_bytes)  # no saving of unused budget

    def _pop(self, queue: deque[tuple[RtpPacket, int]], rate_bps: float) -> RtpPacket:
        packet, enqueued_us = queue.popleft()
        size = packet.size
        self._queued_bytes -= size
        self._enqueue_time_sum_us -= enqueued_us
        max_bytes = rate_bps / 8 * BUDGET_WINDOW_US / 1e6
        self._budget_bytes = max(self._budget_bytes - size, -max_bytes)
        return packet
