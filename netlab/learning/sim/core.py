"""One simulated RTC call over one traced bottleneck, on a virtual clock.

The lab's own sender and receiver run here, not copies of them: the
sans-IO :class:`~endpoints.rtc.sender_core.SenderCore` and
:class:`~endpoints.rtc.receiver_core.ReceiverCore` that the lab's processes
drive with CLOCK_MONOTONIC and UDP sockets are driven with a simulated clock
and link. Packets cross the user-space link's engine
(:mod:`netlab.learning.sim.link`); RTCP (transport feedback, RR, REMB)
is packed and encoded as the receiver sends it and decoded by the sender one
feedback delay later, without loss or queueing on the way back.

The controller is what a scenario's ``estimator:`` names (the lab's mapping,
:func:`netlab.run.kinds.rtc.estimator_args`): ``gcc`` is the sender's GCC on
transport feedback; ``fixed:RATE`` and ``plugin:PATH`` are receiver-side
estimators whose estimate returns in REMB; ``policy`` is the lab's
:class:`~endpoints.agent_rtc.PolicyEstimator`, whose questions the caller
answers: :meth:`RtcSimulation.advance` stops at each of the receiver's
polls, the caller reads :meth:`RtcSimulation.state` and answers with
:meth:`RtcSimulation.decide`.

Events are taken in time order: RTCP arriving at the sender, the sender's
wake-ups and the receiver's timers. Before each, the link hands the receiver
every packet it delivered by then, each with its exact arrival time (the
engine replays its departures exactly, whenever it is advanced), so the
receiver's state at every event is what arrivals one by one would have made
it. The one thing this defers is a reply sent on a packet's arrival (a
plugin's REMB): it leaves at the arrival time but reaches the sender no
earlier than the next event, at most one pacer interval (5 ms) later.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from endpoints.agent_client import Decision
from endpoints.agent_rtc import (
    REWARDS,
    STEP_MS,
    OnlPacketWindow,
    PolicyEstimator,
    RtcContract,
)
from endpoints.metrics.summary import FlowSummary, rtc_flow_metrics
from endpoints.rtc import logs
from endpoints.rtc.estimators import DEFAULT_POLL_INTERVAL_S, ReceiverEstimator
from endpoints.rtc.receiver_app import make_estimator
from endpoints.rtc.receiver_core import DEFAULT_FEEDBACK_INTERVAL_S, ReceiverCore, pack_rtcp
from endpoints.rtc.rtcp import Remb, RtcpPacket
from endpoints.rtc.sender_core import EstimatorMode, SenderCore, SenderSettings, Sent
from netlab.learning.sim.link import IP_UDP_OVERHEAD, Bottleneck, bottleneck_config
from netlab.run.kinds.rtc import estimator_args
from netlab.scenario.model import Estimator
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
#: The sender starts 1 µs into the simulated clock, which (like CLOCK_MONOTONIC) never
#: reads 0 at a send: the payload stamp reserves send time 0 for "no stamp".
SENDER_START_US = 1
POLICY = Estimator("policy")


@dataclass(frozen=True)
class SimConfig:
    """How a simulated call runs. ``link`` is the bottleneck's base shape (the
    trace's rate, and its delay/loss where it has them, replace the base's);
    ``duration_s`` None runs one trace period; ``feedback_delay_s`` None
    sends RTCP back with the forward one-way delay in force (a symmetric path).
    ``sender`` is the flow's sender; its ``estimator`` follows the controller.
    ``trace_offset_s``: the call starts this far into the trace (in a lab the
    link's replay starts with the run and the sender once its receiver is ready)."""

    step_s: float = GYM_STEP_S
    window_ms: float = STEP_MS
    duration_s: float | None = None
    link: LinkShape = field(default_factory=LinkShape)
    loop: bool | None = None
    feedback_delay_s: float | None = None
    feedback_interval_s: float = DEFAULT_FEEDBACK_INTERVAL_S
    trace_offset_s: float = 0.0
    sender: SenderSettings = field(default_factory=SenderSettings)
    contract: RtcContract = field(default_factory=RtcContract)  # what a policy is sent
    record: bool = True
    reward: str = "onl"  # a name in endpoints.agent_rtc.REWARDS

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"reward {self.reward!r}: one of {', '.join(sorted(REWARDS))}")
        if not 0.01 <= self.step_s <= 10.0:
            raise ValueError("step_s must be 0.01..10 s (the receiver's poll interval range)")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration_s must be positive")
        if self.trace_offset_s < 0:
            raise ValueError("trace_offset_s must be >= 0")


class CallerAnswers:
    """The policy estimator's agent, in the simulator: each question is answered
    with what the caller passed to :meth:`RtcSimulation.decide` (as float32, the
    agent protocol's type); a question without an answer is a miss."""

    def __init__(self) -> None:
        self.pending: float | None = None
        self.seq = 0

    def decide(self, observation: npt.ArrayLike, reward: float = 0.0, done: bool = False,
               *, wait_s: float | None = None) -> Decision:
        self.seq += 1
        bps, self.pending = self.pending, None
        if bps is None:
            return Decision(None, None, self.seq)
        return Decision(np.array([bps], dtype=np.float32), 0.0, self.seq)

    def summary(self) -> dict[str, Any]:
        return {"decisions": self.seq}

    def close(self) -> None:
        return None


class RtcSimulation:
    """A call: ``advance()`` to the next poll, read ``state()``, ``decide(bps)``, repeat
    (with a ``policy`` estimator; any other runs to the end in one ``advance()``)."""

    def __init__(self, trace: Trace, config: SimConfig, seed: int = 0,
                 estimator: Estimator = POLICY, base_dir: Path | None = None) -> None:
        self.trace = trace
        self.config = config
        self.seed = seed
        self.controller = estimator
        duration = config.duration_s if config.duration_s is not None else trace.period_s
        self.end_ns = round(duration * 1e9)
        self.link = Bottleneck(bottleneck_config(trace, config.link, seed=seed,
                                                 loop=config.loop),
                               start_ns=-round(config.trace_offset_s * 1e9))
        self.answers = CallerAnswers()
        self.policy: PolicyEstimator | None = None
        receiver_estimator: ReceiverEstimator | None
        mode: EstimatorMode
        if estimator.kind == "policy":
            self.policy = PolicyEstimator(self.answers, start_bps=round(config.sender.start_bps),
                                          contract=config.contract)
            self.policy.window = OnlPacketWindow(config.window_ms)
            receiver_estimator, mode = self.policy, "remb"
        else:
            mode, spec = estimator_args(estimator, base_dir)
            receiver_estimator = make_estimator(spec)
        self.sender = SenderCore(dataclasses.replace(config.sender, estimator=mode),
                                 seed=seed, start_us=SENDER_START_US)
        self.receiver = ReceiverCore(receiver_estimator, start_ns=0,
                                     poll_interval_s=config.step_s,
                                     feedback_interval_s=config.feedback_interval_s)
        self.sender.start(SENDER_START_US)
        self.now_ns = SENDER_START_US * 1000
        self.polls = 0
        self.done = False
        self._at_poll = False
        self._to_sender: deque[tuple[int, bytes]] = deque()
        self._blank: dict[int, bytes] = {}
        self._last_estimate: float | None = None
        self.sent: list[tuple[Any, ...]] = []
        self.received: list[tuple[Any, ...]] = []
        self.estimates: list[tuple[int, float]] = []  # (µs, REMB bps)
        self.targets: list[tuple[int, float]] = [(0, self.sender.target_bps)]  # (µs, bps)

    # ---- the caller's side ------------------------------------------------------

    @property
    def now_us(self) -> int:
        return self.now_ns // 1000

    @property
    def decisions(self) -> int:
        """Polls the policy answered (a poll without new packets keeps its estimate)."""
        return self.policy.policy_estimates if self.policy is not None else 0

    @property
    def fresh(self) -> bool:
        """Packets arrived since the previous poll (the policy will be asked)."""
        return self.policy is not None and self.policy.reported

    @property
    def estimate_bps(self) -> float:
        """The estimate in force at the receiver (the sender's target with ``gcc``)."""
        if self.policy is not None:
            return self.policy.estimate_bps
        if self._last_estimate is not None:
            return self._last_estimate
        return self.sender.target_bps

    def set_initial_estimate(self, bps: float) -> None:
        """The policy's answer to its first question, asked on a zero state before any
        packet (``PolicyEstimator.__init__``): it labels packets, no REMB carries it."""
        if self.policy is None:
            raise ValueError(f"the simulated flow's estimator is {self.controller}, not policy")
        self.policy.estimate_bps = self.policy.applied(float(np.float32(bps)))

    def state(self) -> list[float]:
        """OpenNetLab's raw state now: [receive bps, mean delay ms, loss ratio, estimate bps]."""
        return self.policy.window.state() if self.policy is not None else [0.0, 0.0, 0.0, 0.0]

    def observation(self) -> list[float]:
        """What the policy is sent at this poll, in its contract (the state, and for
        ``rtc-hist`` the earlier ones)."""
        if self.policy is None:
            return [0.0] * self.config.contract.obs_size
        return self.policy.observation(self.policy.window.state())

    def reward(self) -> float:
        return REWARDS[self.config.reward](self.state())

    def decide(self, bps: float) -> float:
        """Answer the poll :meth:`advance` stopped at with the policy's action (bit/s,
        or a factor on the estimate with ``rtc-hist``); returns the estimate sent in REMB."""
        if not self._at_poll:
            raise RuntimeError("decide() answers a poll: call advance() first")
        self.answers.pending = float(bps)
        self._at_poll = False
        self._timers(self.now_ns)
        self.answers.pending = None
        return self.estimate_bps

    # ---- time -------------------------------------------------------------------

    def advance(self) -> bool:
        """Run to the next poll of a policy (True) or to the end of the call (False)."""
        if self.done:
            return False
        if self._at_poll:  # not answered: the agent missed it
            self._at_poll = False
            self._timers(self.now_ns)
        sender, receiver = self.sender, self.receiver
        to_sender = self._to_sender
        end = self.end_ns
        while True:
            t = sender_t = sender.next_deadline_us(self.now_ns // 1000) * 1000
            if to_sender and to_sender[0][0] < t:
                t = to_sender[0][0]
            timer_t = receiver.next_deadline_ns()
            if timer_t is not None and timer_t < t:
                t = timer_t
            t = max(t, self.now_ns)
            if t >= end:
                self._finish()
                return False
            self.now_ns = t
            self._receive(t)
            while to_sender and to_sender[0][0] <= t:
                sender.on_rtcp_datagram(to_sender.popleft()[1], t // 1000)
                if sender.target_bps != self.targets[-1][1] and self.config.record:
                    self.targets.append((t // 1000, sender.target_bps))
            if sender_t <= t:  # RTCP just in may have moved it up: the next pass sees it
                self._turn(t)
            if timer_t is not None and timer_t <= t:
                if self.policy is not None and receiver.poll_due(t):
                    self._at_poll = True
                    self.polls += 1
                    return True
                self._timers(t)

    def _turn(self, now_ns: int) -> None:
        """The sender's wake-up: every packet it releases leaves at ``now_ns``."""
        sender = self.sender
        record = self.config.record
        for departure in sender.turn(now_ns // 1000):
            sent = sender.depart(departure, now_ns)
            self._put_on_wire(sent)
            if record:
                self.sent.append(sent.log_row())

    def _put_on_wire(self, sent: Sent) -> None:
        ip_size = sent.size + IP_UDP_OVERHEAD
        blank = self._blank.get(ip_size)
        if blank is None:
            blank = self._blank[ip_size] = bytes(ip_size)
        self.link.send(sent.send_ns, blank, sent)

    def _receive(self, until_ns: int) -> None:
        """Every packet the link delivered by ``until_ns``, into the receiver."""
        receiver = self.receiver
        record = self.config.record
        for arrival_ns, item in self.link.deliver(until_ns):
            sent: Sent = item  # type: ignore[assignment]
            arrival, rtcp = receiver.on_rtp(sent.packet, sent.size, arrival_ns)
            if record:
                self.received.append(arrival.log_row())
            if rtcp:
                self._send_rtcp(rtcp, arrival_ns)

    def _timers(self, now_ns: int) -> None:
        for compound in self.receiver.on_timer(now_ns):
            self._send_rtcp(compound, now_ns)

    def _send_rtcp(self, packets: list[RtcpPacket], now_ns: int) -> None:
        for packet in packets:
            if isinstance(packet, Remb):
                self._last_estimate = float(packet.bitrate_bps)
                if self.config.record:
                    self.estimates.append((now_ns // 1000, float(packet.bitrate_bps)))
        delay_s = (self.config.feedback_delay_s if self.config.feedback_delay_s is not None
                   else self.link.delay_s())
        due = now_ns + round(delay_s * 1e9)
        if self._to_sender:  # one FIFO path back: nothing overtakes what went before
            due = max(due, self._to_sender[-1][0])
        for datagram in pack_rtcp(packets):
            self._to_sender.append((due, datagram))

    def _finish(self) -> None:
        """The sender stops at the end; what is still on the link arrives for ``TAIL_S``."""
        self.now_ns = self.end_ns
        self._receive(self.end_ns + round(TAIL_S * 1e9))
        self.done = True

    # ---- results ----------------------------------------------------------------

    def records(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """(receiver_packets, sender_packets) with the lab's log dtypes."""
        recv = np.array(self.received, dtype=logs.dtype_of(logs.RECEIVER_PACKETS.fields))
        sent = np.array(self.sent, dtype=logs.dtype_of(logs.SENDER_PACKETS.fields))
        return recv, sent

    def capacity(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The trace's capacity every 100 ms (what the lab's flow results use)."""
        times = np.arange(0, self.end_ns, CAPACITY_BIN_NS, dtype=np.int64)
        offset = self.config.trace_offset_s
        caps = np.array([self.trace.capacity_at(t / 1e9 + offset) for t in times],
                        dtype=np.float64)
        return times, caps

    def summary(self, span_s: float | None = None) -> FlowSummary:
        """Metrics and scores by ``endpoints.metrics.summary.rtc_flow_metrics``, as in a
        lab, over the call's first ``span_s`` (default: all of it)."""
        if not self.config.record:
            raise ValueError("this simulation kept no records (SimConfig.record is False)")
        recv, sent = self.records()
        targets = np.array(self.targets, dtype=np.float64).reshape(-1, 2)
        end_ns = self.end_ns if span_s is None else min(self.end_ns, round(span_s * 1e9))
        return rtc_flow_metrics(
            recv, sent, start_ns=0, end_ns=end_ns,
            estimates=((targets[:, 0] * 1000).astype(np.int64), targets[:, 1]),
            capacity=self.capacity())
