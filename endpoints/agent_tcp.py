"""TCP pacing rate set by the host's policy agent (contract ``tcp-mi5``).

    python -m endpoints.tcp.sender_app --dest HOST:PORT --cc cubic ... \\
        --policy '/run/netlab/LAB/agents/alice.sock?deadline=1ms&fallback=kernel&interval=100ms'

Every monitor interval (MI, 100 ms by default, down to 10 ms) the sender's
controller turns the TCP_INFO samples of that MI into five features, sends
them with the reward of the MI (which ran under the previous action) to the
agent through :meth:`AgentClient.decide`, waits at most the deadline (1 ms
by default) and applies the answer as SO_MAX_PACING_RATE. This is Aurora's
loop (N. Jay, N. Rotman, B. Godfrey, M. Schapira, A. Tamar, "A Deep
Reinforcement Learning Perspective on Internet Congestion Control", ICML
2019) with the kernel's TCP underneath: the policy's rate caps the
kernel's own pacing rate, cwnd still applies.

Observation (float32 × 5), normalised here so the policy sees bounded values
(the checkpoint's observation transform is the identity); bounds are
PCC-RL's (the Aurora code base, ``sender_obs.py``) where it has them:

0. latency gradient: least-squares slope of the kernel's smoothed RTT
   (``tcpi_rtt``) over the MI's samples, in s/s, clipped to [-1, 10]
   (Aurora's "sent latency inflation"; TCP_INFO has no per-packet RTT).
1. latency ratio: mean RTT of the MI / ``tcpi_min_rtt`` (the connection's
   windowed minimum), clipped to [1, 10000]; 1 when either is unknown.
2. sending ratio: bytes sent (``tcpi_bytes_sent``, retransmissions
   included) / bytes acked (``tcpi_bytes_acked``) in the MI; 1 when nothing
   was acked or the ratio reaches 1000 (PCC-RL's rule).
3. delivery rate: acked bytes × 8 / MI length on a log scale, 10 kbit/s →
   0 and 10 Gbit/s → 1, clipped to [0, 1].
4. retransmit ratio: ``tcpi_bytes_retrans`` / ``tcpi_bytes_sent`` in the
   MI, in [0, 1] (the sender's view of loss).

Reward, Aurora's (§4 of the paper; PCC-RL ``network_sim.py``):
``10 × throughput − 1000 × latency − 2000 × loss`` with throughput in
1500-byte packets per second (acked bytes), latency the MI's mean RTT in
seconds and loss the retransmit ratio, scaled by PCC-RL's
``REWARD_SCALE`` (0.001).

Action: one value ``a`` (a tanh output in [-1, 1] for the initial policy;
any finite value is accepted). As Aurora: ``rate × (1 + α·a)`` for a ≥ 0,
``rate / (1 − α·a)`` for a < 0, α = 0.025, clamped to [min, max].

Start: with ``start=RATE`` that rate is in force from the first byte;
without it the kernel runs the first MI alone and the policy's first step
goes on from the rate that MI delivered.

Fallback, when a reply misses the deadline: ``keep`` leaves the last rate
in force; ``kernel`` lifts the pacing limit (SO_MAX_PACING_RATE = ~0), so
the kernel's congestion control governs alone, until a reply is timely
again (the policy then goes on from its last rate). Decisions, misses,
fallback time and round trips are counted by the client and written to
``agent_client.json`` in the sender's log directory; every step is logged
in ``policy.bin`` (:data:`POLICY_DTYPE`).
"""

from __future__ import annotations

import math
import socket
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from endpoints.agent_client import AgentClient
from endpoints.tcp import logs
from endpoints.tcp.errors import TcpEndpointError
from endpoints.tcp.modes import parse_rate_bps, parse_seconds
from endpoints.tcp.pacing import UNLIMITED, clamp_rate, set_max_pacing_rate
from endpoints.tcp.tcp_info import KERNEL_FIELD_NAMES, read_tcp_info_raw, unpack_tcp_info

CONTRACT: Final = "tcp-mi5"
OBS_SIZE: Final = 5
ACTION_SIZE: Final = 1
FEATURES: Final = ("latency_gradient", "latency_ratio", "sending_ratio", "delivery_rate_log",
                   "retransmit_ratio")
ALPHA: Final = 0.025  # Aurora's rate-change scale
DEFAULT_INTERVAL_S: Final = 0.1
MIN_INTERVAL_S: Final = 0.01
DEFAULT_MIN_BPS: Final = 100_000.0
DEFAULT_MAX_BPS: Final = 10e9
FALLBACKS: Final = ("keep", "kernel")
CLIENT_SUMMARY: Final = "agent_client.json"
POLICY_FILE: Final = "policy.bin"

# PCC-RL's observation bounds (sender_obs.py) and reward (network_sim.py).
GRADIENT_BOUNDS: Final = (-1.0, 10.0)
LATENCY_RATIO_BOUNDS: Final = (1.0, 10_000.0)
SEND_RATIO_CAP: Final = 1000.0
LOG_RATE_LOW_BPS, LOG_RATE_HIGH_BPS = 1e4, 1e10
BYTES_PER_PACKET: Final = 1500
THROUGHPUT_COEF, LATENCY_COEF, LOSS_COEF = 10.0, 1000.0, 2000.0
REWARD_SCALE: Final = 0.001
#: Samples closer than this to the one before add nothing to the RTT slope but noise.
MIN_SAMPLE_GAP_NS: Final = 1_000_000

#: One policy step. ``t_sent_ns``: observation sent; ``t_done_ns``: the step ended
#: (rate applied or fallback acted); ``timely``: 1 if the reply made the deadline;
#: ``action``: the policy's output (NaN on a miss); ``rate_Bps``: SO_MAX_PACING_RATE in
#: force after the step (``UNLIMITED``: the kernel governs; 0: not set yet).
POLICY_DTYPE: Final = np.dtype(
    [("t_sent_ns", "<i8"), ("t_done_ns", "<i8"), ("timely", "u1"), ("action", "<f4"),
     ("rate_Bps", "<u8"), ("obs", "<f4", (OBS_SIZE,)), ("reward", "<f4"),
     ("latency_us", "<f4")])

_FIELD = {name: KERNEL_FIELD_NAMES.index(name) for name in (
    "rtt_us", "min_rtt_us", "bytes_acked", "bytes_sent", "bytes_retrans")}


@dataclass(frozen=True)
class InfoSample:
    """The TCP_INFO fields a monitor interval reads, at one instant."""

    t_ns: int
    rtt_us: int
    min_rtt_us: int
    bytes_acked: int
    bytes_sent: int
    bytes_retrans: int

    @classmethod
    def from_values(cls, t_ns: int, values: Sequence[int]) -> InfoSample:
        """From :func:`endpoints.tcp.tcp_info.unpack_tcp_info`'s tuple."""
        return cls(t_ns, *(int(values[i]) for i in _FIELD.values()))


@dataclass(frozen=True)
class MonitorInterval:
    """What happened between two policy steps (computed by :func:`monitor_interval`)."""

    duration_s: float
    mean_rtt_s: float
    rtt_slope: float
    min_rtt_s: float
    acked_bytes: int
    sent_bytes: int
    retrans_bytes: int

    @property
    def delivery_bps(self) -> float:
        return self.acked_bytes * 8 / self.duration_s

    @property
    def retransmit_ratio(self) -> float:
        return min(1.0, self.retrans_bytes / self.sent_bytes) if self.sent_bytes > 0 else 0.0

    def observation(self) -> list[float]:
        """The ``tcp-mi5`` features (module docstring), normalised."""
        gradient = min(max(self.rtt_slope, GRADIENT_BOUNDS[0]), GRADIENT_BOUNDS[1])
        ratio = 1.0
        if self.min_rtt_s > 0 and self.mean_rtt_s > 0:
            ratio = min(max(self.mean_rtt_s / self.min_rtt_s, LATENCY_RATIO_BOUNDS[0]),
                        LATENCY_RATIO_BOUNDS[1])
        send_ratio = 1.0
        if self.acked_bytes > 0 and self.sent_bytes < SEND_RATIO_CAP * self.acked_bytes:
            send_ratio = self.sent_bytes / self.acked_bytes
        return [gradient, ratio, send_ratio, log_rate(self.delivery_bps),
                self.retransmit_ratio]

    def reward(self) -> float:
        """Aurora's reward for this MI (module docstring)."""
        packets_per_s = self.acked_bytes / BYTES_PER_PACKET / self.duration_s
        return REWARD_SCALE * (THROUGHPUT_COEF * packets_per_s - LATENCY_COEF * self.mean_rtt_s
                               - LOSS_COEF * self.retransmit_ratio)


def log_rate(bps: float) -> float:
    """10 kbit/s → 0, 10 Gbit/s → 1 on a log scale, clipped."""
    if bps <= LOG_RATE_LOW_BPS:
        return 0.0
    value = math.log(bps / LOG_RATE_LOW_BPS) / math.log(LOG_RATE_HIGH_BPS / LOG_RATE_LOW_BPS)
    return min(1.0, value)


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 with fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var <= 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def monitor_interval(samples: Sequence[InfoSample]) -> MonitorInterval | None:
    """The MI from ``samples[0]`` (the previous MI's last sample) to ``samples[-1]``;
    None when no time has passed."""
    if len(samples) < 2 or samples[-1].t_ns <= samples[0].t_ns:
        return None
    first, last = samples[0], samples[-1]
    inside = [s for s in samples[1:] if s.rtt_us > 0]
    mean_rtt_s = sum(s.rtt_us for s in inside) / len(inside) / 1e6 if inside else 0.0
    kept: list[InfoSample] = []
    for sample in samples:
        if sample.rtt_us > 0 and (not kept or sample.t_ns - kept[-1].t_ns >= MIN_SAMPLE_GAP_NS):
            kept.append(sample)
    slope = _slope([(s.t_ns / 1e9, s.rtt_us / 1e6) for s in kept])
    return MonitorInterval(
        duration_s=(last.t_ns - first.t_ns) / 1e9, mean_rtt_s=mean_rtt_s, rtt_slope=slope,
        min_rtt_s=last.min_rtt_us / 1e6,
        acked_bytes=max(0, last.bytes_acked - first.bytes_acked),
        sent_bytes=max(0, last.bytes_sent - first.bytes_sent),
        retrans_bytes=max(0, last.bytes_retrans - first.bytes_retrans))


def next_rate(rate_bps: float, action: float, *, low_bps: float, high_bps: float,
              alpha: float = ALPHA) -> float:
    """Aurora's multiplicative rate update, clamped to [low, high]; a non-finite
    action leaves the rate as it is."""
    if not math.isfinite(action):
        new = rate_bps
    elif action >= 0:
        new = rate_bps * (1 + alpha * action)
    else:
        new = rate_bps / (1 - alpha * action)
    return min(max(new, low_bps), high_bps)


@dataclass(frozen=True)
class PolicyOptions:
    socket: str
    deadline_s: float = 0.001
    fallback: str = "kernel"
    interval_s: float = DEFAULT_INTERVAL_S
    flow: int | None = None
    start_bps: float | None = None  # None: the first MI's delivery rate
    min_bps: float = DEFAULT_MIN_BPS
    max_bps: float = DEFAULT_MAX_BPS


_OPTION_KEYS = ("deadline", "fallback", "interval", "flow", "start", "min", "max")
_USAGE = ("SOCKET[?deadline=1ms&fallback=keep|kernel&interval=100ms&flow=N&start=RATE"
          "&min=RATE&max=RATE]")


def parse_policy_option(argument: str, *, where: str = "--policy") -> PolicyOptions:
    """``SOCKET?deadline=1ms&fallback=kernel&interval=100ms`` → :class:`PolicyOptions`."""
    path, _, query = argument.partition("?")
    try:
        pairs = urllib.parse.parse_qsl(query, strict_parsing=bool(query))
    except ValueError:
        pairs = [("", "")]
    options = dict(pairs)
    unknown = sorted(set(options) - set(_OPTION_KEYS))
    if not path or unknown:
        raise TcpEndpointError(f"cannot read policy option {argument!r}"
                               + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
                               where=where, fix=f"write {_USAGE}")
    deadline = parse_seconds(options.get("deadline", "1ms"), where=f"{where} deadline")
    interval = parse_seconds(options.get("interval", "100ms"), where=f"{where} interval")
    fallback = options.get("fallback", "kernel")
    if deadline <= 0 or fallback not in FALLBACKS or interval < MIN_INTERVAL_S - 1e-9:
        raise TcpEndpointError(
            f"deadline {deadline}s, fallback {fallback!r}, interval {interval}s", where=where,
            fix=f"a positive deadline, fallback one of {', '.join(FALLBACKS)}, "
                f"interval at least {MIN_INTERVAL_S * 1e3:.0f}ms")
    if deadline >= interval:
        raise TcpEndpointError(f"deadline {deadline}s is not shorter than the interval "
                               f"{interval}s", where=where,
                               fix="the reply must be due before the next decision")
    flow_text = options.get("flow")
    if flow_text is not None and not flow_text.isdigit():
        raise TcpEndpointError(f"flow {flow_text!r} is not a number", where=where,
                               fix="flow=N with N a whole number")
    start = options.get("start")
    low = parse_rate_bps(options.get("min", f"{DEFAULT_MIN_BPS:.0f}"), where=f"{where} min")
    high = parse_rate_bps(options.get("max", f"{DEFAULT_MAX_BPS:.0f}"), where=f"{where} max")
    if low > high:
        raise TcpEndpointError(f"min {low} bit/s above max {high} bit/s", where=where,
                               fix="give min <= max")
    return PolicyOptions(
        socket=path, deadline_s=deadline, fallback=fallback, interval_s=interval,
        flow=int(flow_text) if flow_text is not None else None,
        start_bps=parse_rate_bps(start, where=f"{where} start") if start else None,
        min_bps=low, max_bps=high)


@dataclass(frozen=True)
class RateChange:
    """One SO_MAX_PACING_RATE the controller set (for the sender's pacing log)."""

    t_sent_ns: int
    t_applied_ns: int
    requested_Bps: int
    applied_Bps: int


class PolicyRateController:
    """Runs the policy steps of one TCP sender (see the module docstring).

    The sender calls :meth:`begin` once connected, :meth:`on_sample` with every
    TCP_INFO sample it takes, and :meth:`step` when ``next_step_ns`` is due."""

    def __init__(self, options: PolicyOptions, client: AgentClient,
                 log_dir: Path | None = None) -> None:
        self.options = options
        self.client = client
        self.log = logs.RecordLog(log_dir / POLICY_FILE, POLICY_DTYPE) if log_dir else None
        self.log_dir = log_dir
        self.interval_ns = round(options.interval_s * 1e9)
        self.next_step_ns = 0
        self.rate_bps: float | None = None  # the policy's rate; None before the first reply
        self.limited = False  # a pacing limit of ours is in force
        self.policy_steps = 0
        self.fallback_steps = 0
        self.kernel_handovers = 0
        self._samples: list[InfoSample] = []

    @classmethod
    def connect(cls, argument: str, log_dir: Path | None = None) -> PolicyRateController:
        options = parse_policy_option(argument)
        client = AgentClient(options.socket, policy=CONTRACT, obs_size=OBS_SIZE,
                             action_size=ACTION_SIZE, deadline_s=options.deadline_s,
                             flow=options.flow)
        return cls(options, client, log_dir)

    def begin(self, sock: socket.socket, now_ns: int) -> RateChange | None:
        """Take the first MI's baseline; apply ``start`` if one was given."""
        self._samples = [InfoSample.from_values(now_ns, unpack_tcp_info(read_tcp_info_raw(sock)))]
        self.next_step_ns = now_ns + self.interval_ns
        if self.options.start_bps is None:
            return None
        self.rate_bps = min(max(self.options.start_bps, self.options.min_bps),
                            self.options.max_bps)
        return self._apply(sock, self.rate_bps, now_ns)

    def on_sample(self, t_ns: int, values: Sequence[int]) -> None:
        if self._samples:
            self._samples.append(InfoSample.from_values(t_ns, values))

    def step(self, sock: socket.socket, now_ns: int) -> RateChange | None:
        """One decision: observe the MI, ask the agent within the deadline, act."""
        sample = InfoSample.from_values(now_ns, unpack_tcp_info(read_tcp_info_raw(sock)))
        samples = [*self._samples, sample]
        self._samples = [sample]
        self.next_step_ns += self.interval_ns
        if self.next_step_ns <= now_ns:  # a late wake-up: stay on the grid
            skipped = (now_ns - self.next_step_ns) // self.interval_ns + 1
            self.next_step_ns += skipped * self.interval_ns
        mi = monitor_interval(samples)
        if mi is None:
            return None
        observation = mi.observation()
        reward = mi.reward()
        t_sent = now_ns
        decision = self.client.decide(observation, reward)
        change: RateChange | None = None
        action = math.nan
        if decision.action is not None:
            action = float(decision.action[0])
            base = self.rate_bps
            if base is None:  # no start rate given: go on from what the path delivered
                base = mi.delivery_bps if mi.delivery_bps > 0 else self.options.min_bps
            self.rate_bps = next_rate(base, action, low_bps=self.options.min_bps,
                                      high_bps=self.options.max_bps)
            self.policy_steps += 1
            change = self._apply(sock, self.rate_bps, t_sent)
        else:
            self.fallback_steps += 1
            if self.options.fallback == "kernel" and self.limited:
                change = self._lift(sock, t_sent)
        if self.log is not None:
            latency = decision.latency_us if decision.latency_us is not None else math.nan
            self.log.append((t_sent, change.t_applied_ns if change else time.monotonic_ns(),
                             int(decision.timely), action, self.current_limit_Bps,
                             np.asarray(observation, dtype=np.float32), reward, latency))
        return change

    @property
    def current_limit_Bps(self) -> int:
        if self.limited and self.rate_bps is not None:
            return clamp_rate(round(self.rate_bps / 8))
        return UNLIMITED if self.kernel_handovers else 0

    def _apply(self, sock: socket.socket, rate_bps: float, t_sent: int) -> RateChange:
        requested = round(rate_bps / 8)
        applied = clamp_rate(requested)
        set_max_pacing_rate(sock, applied)
        self.limited = True
        return RateChange(t_sent, time.monotonic_ns(), requested, applied)

    def _lift(self, sock: socket.socket, t_sent: int) -> RateChange:
        set_max_pacing_rate(sock, UNLIMITED)
        self.limited = False
        self.kernel_handovers += 1
        return RateChange(t_sent, time.monotonic_ns(), UNLIMITED, UNLIMITED)

    def flush(self) -> None:
        if self.log is not None:
            self.log.flush()

    def summary(self) -> dict[str, Any]:
        return {**self.client.summary(), "contract": CONTRACT,
                "fallback": self.options.fallback,
                "interval_ms": self.options.interval_s * 1e3,
                "policy_steps": self.policy_steps, "fallback_steps": self.fallback_steps,
                "kernel_handovers": self.kernel_handovers,
                "last_rate_bps": self.rate_bps}

    def close(self) -> None:
        """Say goodbye to the agent, close the log and write ``agent_client.json``."""
        self.client.close()
        if self.log is not None:
            self.log.close()
        if self.log_dir is not None and self.log_dir.is_dir():
            logs.write_meta(self.log_dir / CLIENT_SUMMARY, self.summary())


def read_policy_log(log_dir: Path) -> Any:
    """The sender's policy steps (:data:`POLICY_DTYPE`); empty if there were none."""
    path = Path(log_dir) / POLICY_FILE
    if not path.exists():
        return np.zeros(0, dtype=POLICY_DTYPE)
    return logs.read_records(path, POLICY_DTYPE)
