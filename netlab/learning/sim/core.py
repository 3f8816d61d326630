"""One simulated RTC call over one traced bottleneck, on a virtual clock.

Sender (:mod:`netlab.learning.sim.sender`) → bottleneck (the user-space
link's engine, :mod:`netlab.learning.sim.link`) → receiver. The receiver
does what ``endpoints.agent_rtc``'s policy estimator does inside the lab's
receiver process, with the same code: every delivered packet becomes the
AlphaRTC stats dict the receiver builds (abs-send-time unwrapped to ms,
integer ms as AlphaRTC logs them) and goes into
:class:`endpoints.agent_rtc.OnlPacketWindow`; polls start one poll interval
after the first packet arrives and repeat every interval, and at each poll
the caller reads :meth:`RtcSimulation.state` / :meth:`RtcSimulation.reward`
(``OnlPacketWindow.state`` and the config's reward from ``agent_rtc.REWARDS``,
``onl_reward`` by default) and answers with an
estimate. As in ``PolicyEstimator``, a poll with no packet since the last one
keeps the estimate (its "no new packets" rule). The estimate goes back in a
REMB (encoded and decoded by ``endpoints.rtc.rtcp``) that reaches the sender
one feedback delay later.

Events are processed in time order: the sender's wake-ups (frames, 5 ms
pacer), REMB arrivals, polls. The link needs no events of its own: packets
are offered to it when sent and collected when the receiver looks (the
engine replays its departures exactly, whenever it is advanced).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from endpoints.agent_rtc import REWARDS, STEP_MS, OnlPacketWindow
from endpoints.metrics.summary import FlowSummary, rtc_flow_metrics
from endpoints.rtc import logs
from endpoints.rtc.estimators import DEFAULT_POLL_INTERVAL_S
from endpoints.rtc.receiver_app import MAX_REMB_BPS, RECEIVER_SSRC
from endpoints.rtc.rtcp import Remb, decode_compound
from endpoints.rtc.rtp import AbsSendTimeUnwrapper, abs_send_time_from_us
from netlab.learning.sim.link import IP_UDP_OVERHEAD, Bottleneck, bottleneck_config
from netlab.learning.sim.sender import SenderSettings, SentPacket, SimSender
from shaping.spec import LinkShape
from shaping.traces import Trace

#: OpenNetLab's gym steps every 60 ms (``GymEnv(step_time=60)``).
GYM_STEP_S = STEP_MS / 1000
#: The lab's receiver polls its estimator every 200 ms unless told otherwise.
LAB_POLL_S = DEFAULT_POLL_INTERVAL_S
#: The lab's receivers outlive their senders; packets still in flight at the
#: end are delivered for this long (metrics leave a 0.5 s tail out of loss).
TAIL_S = 1.0
CAPACITY_BIN_NS = 100_000_000


@dataclass(frozen=True)
class SimConfig:
    """How a simulated call runs. ``link`` is the bottleneck's base shape (the
    trace's rate, and its delay/loss where it has them, replace the base's);
    ``duration_s`` None runs one trace period; ``feedback_delay_s`` None
    sends REMB back with the forward one-way delay in force (a symmetric path)."""

    step_s: float = GYM_STEP_S
    window_ms: float = STEP_MS
    duration_s: float | None = None
    link: LinkShape = field(default_factory=LinkShape)
    loop: bool | None = None
    feedback_delay_s: float | None = None
    sender: SenderSettings = field(default_factory=SenderSettings)
    hold_without_packets: bool = True
    record: bool = True
    reward: str = "onl"  # a name in endpoints.agent_rtc.REWARDS

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"reward {self.reward!r}: one of {', '.join(sorted(REWARDS))}")
        if not 0.01 <= self.step_s <= 10.0:
            raise ValueError("step_s must be 0.01..10 s (the receiver's poll interval range)")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration_s must be positive")


class RtcSimulation:
    """A call: ``advance()`` to the next poll, read ``state()``, ``decide(bps)``, repeat."""

    def __init__(self, trace: Trace, config: SimConfig, seed: int = 0) -> None:
        self.trace = trace
        self.config = config
        self.seed = seed
        duration = config.duration_s if config.duration_s is not None else trace.period_s
        self.end_us = round(duration * 1e6)
        self.poll_us = round(config.step_s * 1e6)
        self.link = Bottleneck(bottleneck_config(trace, config.link, seed=seed,
                                                 loop=config.loop))
        self.sender = SimSender(config.sender, seed)
        self.window = OnlPacketWindow(config.window_ms)
        self.estimate_bps = float(config.sender.start_bps)
        self.now_us = 0
        self.next_poll_us: int | None = None
        self.polls = 0
        self.decisions = 0
        self.fresh = False  # packets arrived since the previous poll
        self.done = False
        self._rembs: deque[tuple[int, float]] = deque()
        self._unwrap = AbsSendTimeUnwrapper()
        self._blank: dict[int, bytes] = {}
        self.sent: list[tuple[int, ...]] = []
        self.received: list[tuple[int, ...]] = []
        self.estimates: list[tuple[int, float]] = []
        self.targets: list[tuple[int, float]] = [(0, self.sender.target_bps)]
        self.packets_received = 0

    # ---- the caller's side ------------------------------------------------------

    def set_initial_estimate(self, bps: float) -> None:
        """The estimator's first answer, asked on a zero state before any packet
        (``PolicyEstimator.__init__``): it labels packets, no REMB carries it."""
        self.estimate_bps = float(bps)

    def state(self) -> list[float]:
        """OpenNetLab's raw state now: [receive bps, mean delay ms, loss ratio, estimate bps]."""
        return self.window.state()

    def reward(self) -> float:
        return REWARDS[self.config.reward](self.window.state())

    def decide(self, bps: float) -> float:
        """Answer the poll just reached; returns the estimate sent in REMB."""
        if self.fresh or not self.config.hold_without_packets:
            self.estimate_bps = float(bps)
            self.decisions += 1
        estimate = min(MAX_REMB_BPS - 1, max(0, int(self.estimate_bps)))
        remb = decode_compound(Remb(RECEIVER_SSRC, estimate,
                                    (self.sender.video_ssrc,)).encode())[0]
        assert isinstance(remb, Remb)
        delay_s = (self.config.feedback_delay_s if self.config.feedback_delay_s is not None
                   else self.link.delay_s())
        self._rembs.append((self.now_us + round(delay_s * 1e6), float(remb.bitrate_bps)))
        if self.config.record:
            self.estimates.append((self.now_us, float(estimate)))
        return float(estimate)

    # ---- time -------------------------------------------------------------------

    def advance(self) -> bool:
        """Run to the next poll (True) or to the end of the call (False)."""
        if self.done:
            return False
        sender = self.sender
        rembs = self._rembs
        while True:
            poll = self.next_poll_us
            target = self.end_us if poll is None or poll > self.end_us else poll
            wake = sender.next_wake_us()
            if rembs and rembs[0][0] < wake:
                wake = rembs[0][0]
            if wake < target:
                self.now_us = wake
                while rembs and rembs[0][0] <= wake:
                    self._apply_remb(rembs.popleft()[1], wake)
                if sender.next_wake_us() <= wake:
                    for packet in sender.wake(wake):
                        self._put_on_wire(packet)
                if poll is None:
                    self._arm(wake)
                continue
            self.now_us = target
            if poll is None:
                self._arm(target)
                if self.next_poll_us is not None and self.next_poll_us <= self.end_us:
                    continue
            if target == self.next_poll_us:
                self._poll(target)
                return True
            self._finish()
            return False

    def _arm(self, now_us: int) -> None:
        due_ns = self.link.first_due_ns(now_us * 1000)
        if due_ns is not None:
            self.next_poll_us = -(-due_ns // 1000) + self.poll_us

    def _apply_remb(self, bps: float, now_us: int) -> None:
        self.sender.on_remb(bps, now_us)
        if self.config.record:
            self.targets.append((now_us, self.sender.target_bps))

    def _put_on_wire(self, packet: SentPacket) -> None:
        ip_size = packet.size + IP_UDP_OVERHEAD
        blank = self._blank.get(ip_size)
        if blank is None:
            blank = self._blank[ip_size] = bytes(ip_size)
        self.link.send(packet.send_us * 1000, blank, packet)
        if self.config.record:
            self.sent.append((packet.send_us * 1000, packet.transport_seq, packet.ssrc,
                              packet.frame_id, packet.rtp_seq, packet.size,
                              packet.payload_type, packet.last_of_frame, 0))

    def _receive(self, until_us: int) -> int:
        """Every packet delivered by ``until_us`` into the window (and the log)."""
        delivered = self.link.deliver(until_us * 1000)
        window = self.window
        estimate = self.estimate_bps
        record = self.config.record
        unwrap = self._unwrap.unwrap
        for arrival_ns, item in delivered:
            packet: SentPacket = item  # type: ignore[assignment]
            send_ms = unwrap(abs_send_time_from_us(packet.send_us)) / 1000
            # endpoints.rtc.receiver_app.RtcReceiver._report_states, field for field
            window.on_packet({
                "send_time_ms": int(send_ms),
                "arrival_time_ms": int(arrival_ns / 1e6),
                "payload_type": packet.payload_type,
                "sequence_number": packet.rtp_seq,
                "ssrc": packet.ssrc,
                "padding_length": 0,
                "header_length": packet.header_length,
                "payload_size": packet.payload_size,
            }, estimate)
            if record:
                self.received.append((arrival_ns, packet.send_us * 1000, packet.transport_seq,
                                      packet.ssrc, packet.frame_id, packet.rtp_seq, packet.size,
                                      packet.header_length, packet.payload_type,
                                      packet.marker))
        self.packets_received += len(delivered)
        return len(delivered)

    def _poll(self, now_us: int) -> None:
        self.fresh = self._receive(now_us) > 0
        self.polls += 1
        self.next_poll_us = now_us + self.poll_us

    def _finish(self) -> None:
        self._receive(self.end_us + round(TAIL_S * 1e6))
        self.done = True

    # ---- results ----------------------------------------------------------------

    def records(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """(receiver_packets, sender_packets) with the lab's log dtypes."""
        recv = np.array(self.received, dtype=logs.dtype_of(logs.RECEIVER_PACKETS.fields))
        sent = np.array(self.sent, dtype=logs.dtype_of(logs.SENDER_PACKETS.fields))
        return recv, sent

    def capacity(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The trace's capacity every 100 ms (what the lab's flow results use)."""
        times = np.arange(0, self.end_us * 1000, CAPACITY_BIN_NS, dtype=np.int64)
        caps = np.array([self.trace.capacity_at(t / 1e9) for t in times], dtype=np.float64)
        return times, caps

    def summary(self) -> FlowSummary:
        """Metrics and scores by ``endpoints.metrics.summary.rtc_flow_metrics``, as in a lab."""
        if not self.config.record:
            raise ValueError("this simulation kept no records (SimConfig.record is False)")
        recv, sent = self.records()
        targets = np.array(self.targets, dtype=np.float64).reshape(-1, 2)
        return rtc_flow_metrics(
            recv, sent, start_ns=0, end_ns=self.end_us * 1000,
            estimates=((targets[:, 0] * 1000).astype(np.int64), targets[:, 1]),
            capacity=self.capacity())

