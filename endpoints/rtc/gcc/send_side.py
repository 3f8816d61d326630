"""Sender-side GCC: transport feedback in, target bitrate out.

Combines, as libwebrtc's GoogCcNetworkController does for the parts named in
draft-ietf-rmcat-gcc-02: inter-arrival grouping → trendline filter →
overuse detector → AIMD (delay-based estimate Ad), the loss-based
controller (As), and an optional remote limit (REMB). The target is
min(Ad, As, REMB). Pure: the caller passes ``now_us``.

Probing (libwebrtc's ProbeController + ProbeBitrateEstimator): the sender
calls :meth:`SendSideBwe.start_probing` once, sends the clusters it returns
(and those :meth:`take_probe_clusters` hands out later: further and
periodic probes), and tells
:meth:`on_probe_sent` which transport sequence numbers carried which cluster.
A probe result, when the detector is not overusing, becomes the delay-based
estimate and the loss-based one (DelayBasedBwe::MaybeUpdateEstimate →
AimdRateControl::SetEstimate; GoogCcNetworkController calls
SetSendBitrate on a probe result).

Congestion window (libwebrtc's default ``WebRTC-CongestionWindow``, see
:mod:`endpoints.rtc.gcc.congestion_window`): each feedback records its
largest feedback RTT and updates the data window; the sender calls
:meth:`SendSideBwe.on_process_interval` every 25 ms and
:meth:`SendSideBwe.pushback_bps` with its bytes in flight after each packet,
and drops frames as the pushed-back rate says.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from endpoints.rtc.gcc.acked_bitrate import AckedBitrateEstimator
from endpoints.rtc.gcc.aimd import AimdRateControl
from endpoints.rtc.gcc.congestion_window import DEFAULT_QUEUE_MS, CongestionWindowPushback
from endpoints.rtc.gcc.inter_arrival import InterArrival
from endpoints.rtc.gcc.loss_based import LossBasedControl
from endpoints.rtc.gcc.overuse_detector import BandwidthUsage
from endpoints.rtc.gcc.probe_bitrate import ProbeBitrateEstimator
from endpoints.rtc.gcc.probe_controller import (
    DEFAULT_PERIODIC_PROBE_INTERVAL_MS,
    ProbeController,
)
from endpoints.rtc.gcc.trendline import TrendlineEstimator
from endpoints.rtc.probing import ProbeCluster
from endpoints.rtc.twcc import PacketResult

STREAM_TIMEOUT_US = 2_000_000  # libwebrtc kStreamTimeOut: restart the delay filters
RTT_SAMPLES = 32
INITIAL_HALVING_INTERVAL_MS = 200.0
PROBE_MEMORY_PACKETS = 10_000  # forget probe packets this far behind the newest


class SendSideBwe:
    def __init__(self, start_bitrate_bps: float = 300_000, *, min_bitrate_bps: float = 10_000,
                 max_bitrate_bps: float = 30_000_000,
                 periodic_probe_interval_ms: float = DEFAULT_PERIODIC_PROBE_INTERVAL_MS,
                 congestion_window_queue_ms: float = DEFAULT_QUEUE_MS) -> None:
        if congestion_window_queue_ms < 0:
            raise ValueError("congestion_window_queue_ms must be >= 0 (0: no congestion window)")
        self.min_bitrate_bps = min_bitrate_bps
        self.max_bitrate_bps = max_bitrate_bps
        self.inter_arrival = InterArrival()
        self.trendline = TrendlineEstimator()
        self.aimd = AimdRateControl(start_bitrate_bps, min_bitrate_bps=min_bitrate_bps,
                                    max_bitrate_bps=max_bitrate_bps)
        self.loss_based = LossBasedControl(start_bitrate_bps, min_bitrate_bps=min_bitrate_bps,
                                           max_bitrate_bps=max_bitrate_bps)
        self.acked_bitrate = AckedBitrateEstimator()
        self.remote_limit_bps = float("inf")
        self._rtt_samples: deque[float] = deque(maxlen=RTT_SAMPLES)
        self._last_feedback_us: int | None = None
        self.target_bps = float(min(max(start_bitrate_bps, min_bitrate_bps), max_bitrate_bps))
        self.packets_reported = 0
        self.packets_lost = 0
        self.probe_controller = ProbeController(
            max_bitrate_bps, periodic_interval_ms=periodic_probe_interval_ms)
        self.probe_estimator = ProbeBitrateEstimator()
        self._probe_of: dict[int, ProbeCluster] = {}  # transport seq → its cluster
        self._pending_clusters: list[ProbeCluster] = []
        self.congestion_window = (
            CongestionWindowPushback(queue_ms=congestion_window_queue_ms)
            if congestion_window_queue_ms > 0 else None)

    # ---- accessors -------------------------------------------------------------

    @property
    def delay_based_bps(self) -> float:
        return self.aimd.current_bps

    @property
    def loss_based_bps(self) -> float:
        return self.loss_based.estimate_bps

    @property
    def usage(self) -> BandwidthUsage:
        return self.trendline.state

    @property
    def rtt_ms(self) -> float | None:
        if not self._rtt_samples:
            return None
        return sum(self._rtt_samples) / len(self._rtt_samples)

    # ---- probing ---------------------------------------------------------------

    def start_probing(self, now_us: int) -> list[ProbeCluster]:
        """The initial exponential probes (3x and 6x the start rate)."""
        return self.probe_controller.start(self.target_bps, now_us / 1000)

    def take_probe_clusters(self) -> list[ProbeCluster]:
        """Clusters asked for since the last call (further exponential probes)."""
        clusters, self._pending_clusters = self._pending_clusters, []
        return clusters

    def on_probe_sent(self, sequence: int, cluster: ProbeCluster) -> None:
        """Packet ``sequence`` (unwrapped transport-wide number) was part of ``cluster``."""
        self._probe_of[sequence] = cluster
        if len(self._probe_of) > PROBE_MEMORY_PACKETS:
            horizon = sequence - PROBE_MEMORY_PACKETS
            for old in [seq for seq in self._probe_of if seq < horizon]:
                del self._probe_of[old]

    # ---- inputs ----------------------------------------------------------------

    def on_remb(self, bitrate_bps: float) -> float:
        """A receiver's REMB caps the target (draft-alvestrand-rmcat-remb §2)."""
        self.remote_limit_bps = float(bitrate_bps) if bitrate_bps > 0 else float("inf")
        self._update_target()
        return self.target_bps

    def on_rtt(self, rtt_ms: float) -> None:
        """An RTT measured elsewhere (e.g. RTCP SR/RR LSR/DLSR)."""
        self._rtt_samples.append(rtt_ms)
        self._apply_rtt()

    def on_feedback(self, results: Sequence[PacketResult], now_us: int) -> float:
        """Process one feedback's packet results; returns the new target (bps)."""
        if not results:
            return self.target_bps
        now_ms = now_us / 1000
        if self._last_feedback_us is None or now_us - self._last_feedback_us > STREAM_TIMEOUT_US:
            self.inter_arrival.reset()
            self.trendline = TrendlineEstimator()
        self._last_feedback_us = now_us

        received = sorted((r for r in results if r.arrival_time_us is not None),
                          key=lambda r: (r.arrival_time_us, r.sequence))
        lost = len(results) - len(received)
        self.packets_reported += len(results)
        self.packets_lost += lost

        if received:
            # Feedback RTT: now minus the send time of the newest packet it acknowledges
            # (includes the receiver's feedback wait, as libwebrtc's feedback RTT does).
            self._rtt_samples.append((now_us - max(r.send_time_us for r in received)) / 1000)
            self._apply_rtt()
            if self.congestion_window is not None:
                self.congestion_window.on_feedback_rtt(
                    (now_us - min(r.send_time_us for r in received)) / 1000)
        for result in results:
            cluster = self._probe_of.pop(result.sequence, None)
            if cluster is not None:
                self.probe_estimator.on_probe_result(result, cluster)
        for result in received:
            assert result.arrival_time_us is not None
            self.acked_bitrate.on_packet(result.arrival_time_us, result.size)
            deltas = self.inter_arrival.compute_deltas(result.send_time_us,
                                                       result.arrival_time_us, result.size)
            if deltas is not None:
                self.trendline.update(deltas.arrival_delta_ms, deltas.send_delta_ms,
                                      result.arrival_time_us / 1000)
        probe_bps = self.probe_estimator.fetch_and_reset()
        if probe_bps is not None and self.trendline.state is not BandwidthUsage.OVERUSING:
            # A probe that found less than the estimate may lower it only to the
            # throughput seen (libwebrtc GoogCcNetworkController,
            # limit_probes_lower_than_throughput_estimate): a periodic probe on a
            # full link must not cut the rate that link is carrying.
            acked = self.acked_bitrate.bitrate_bps()
            if acked is not None and probe_bps < self.aimd.current_bps:
                probe_bps = max(probe_bps, min(self.aimd.current_bps, 0.9 * acked))
            self.aimd.set_estimate(probe_bps, now_ms)
            self.loss_based.estimate_bps = self.aimd.current_bps
        else:
            before_bps = self.aimd.current_bps
            self._update_delay_based(now_ms)
            if self.aimd.current_bps < before_bps:
                self.probe_controller.on_overuse(now_ms)
        self.loss_based.on_packets(lost, len(results), now_ms,
                                   upper_limit_bps=self.aimd.current_bps)
        self._update_target()
        if self.congestion_window is not None:
            self.congestion_window.update_window(self.target_bps)
        self._pending_clusters += self.probe_controller.process(now_ms)
        self._pending_clusters += self.probe_controller.set_estimated_bitrate(
            self.target_bps, now_ms)
        return self.target_bps

    # ---- congestion window -------------------------------------------------------

    def on_process_interval(self) -> None:
        """Every 25 ms (libwebrtc's process interval): refresh the data window."""
        if self.congestion_window is not None:
            self.congestion_window.update_window(self.target_bps)

    def pushback_bps(self, in_flight_bytes: float) -> float:
        """The target after congestion-window pushback for ``in_flight_bytes``."""
        if self.congestion_window is None:
            return self.target_bps
        return self.congestion_window.pushback_bps(self.target_bps, in_flight_bytes)

    # ---- internals -------------------------------------------------------------

    def _apply_rtt(self) -> None:
        rtt = self.rtt_ms
        if rtt is not None:
            self.aimd.set_rtt(rtt)
            self.loss_based.set_rtt(rtt)

    def _update_delay_based(self, now_ms: float) -> None:
        acked = self.acked_bitrate.bitrate_bps()
        usage = self.trendline.state
        if usage is BandwidthUsage.OVERUSING:
            if acked is not None:
                if self.aimd.time_to_reduce_further(now_ms, acked):
                    self.aimd.update(usage, acked, now_ms)
            elif self.aimd.time_to_reduce_further(now_ms, self.aimd.current_bps / 2 - 1):
                # Overuse before any throughput measurement: halve (libwebrtc does
                # this every 200 ms until the acknowledged rate is known).
                self.aimd.set_estimate(self.aimd.current_bps / 2, now_ms)
        else:
            self.aimd.update(usage, acked, now_ms)

    def _update_target(self) -> None:
        self.loss_based.cap(min(self.aimd.current_bps, self.remote_limit_bps))
        target = min(self.aimd.current_bps, self.loss_based.estimate_bps, self.remote_limit_bps)
        self.target_bps = min(self.max_bitrate_bps, max(self.min_bitrate_bps, target))
