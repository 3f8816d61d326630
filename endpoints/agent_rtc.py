"""RTC receiver estimator served by the host's policy agent (estimator kind ``policy``).

    python -m endpoints.agent_rtc --bind HOST:PORT \\
        --estimator 'policy:/run/netlab/LAB/agents/bob.sock?deadline=1ms&fallback=gcc' ...

runs :mod:`endpoints.rtc.receiver_app` unchanged with the ``policy`` kind
registered (:func:`endpoints.rtc.receiver_app.register_estimator_kind`).
Every poll (``--poll-interval``, 200 ms by default, 10 ms to 1 s in a lab's
``decision_interval``) the estimator computes OpenNetLab's state over the
packets of the last window (``window=``, 60 ms by default: their step; the lab
sets it to the decision interval), exactly as their gym example's
``BandwidthEstimator.py`` with
``alphartc_gym/utils/packet_record.py`` does (OpenNetLab/gym-example,
``rtc_env.py``): receive rate (payload bytes × 8 / window), mean one-way
delay relative to the first packet's, loss ratio from sequence gaps, and
the last estimate. It sends them raw (bps, ms, ratio, bps: contract
``rtc-onl4``; the agent normalises as the policy was trained) with the
reward of the previous action (their ``rtc_env``: normalised rate − 0.2 ×
loss) and uses the reply if it arrives within the deadline. Contract
``rtc-hist`` (:class:`RtcContract`) sends the last N such states instead and
reads the reply as a factor on the estimate in force. Otherwise the
fallback acts: ``keep`` the last estimate, or ``gcc`` (a receiver-side GCC
fed every packet all along) until replies are timely again.

The wait for a reply is bounded by the deadline (1 ms by default) and the
estimate goes into REMB right after, so "observation sent → action applied"
is what is timed. On exit ``agent_client.json`` in ``--log-dir`` holds the
decisions, misses, fallback time and the newest 65,536 round-trip times.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endpoints.agent_client import AgentClient, Decider
from endpoints.metrics.objectives import (  # the rewards, defined with the scores
    MAX_MBPS,
    MIN_MBPS,
    NEEDS_CAPACITY,
    REWARDS,
    UNIT_BPS,
    Reward,
    capacity_reward,
    liner_to_log,
    onl_reward,
    qoe_reward,
)
from endpoints.rtc.errors import PluginError
from endpoints.rtc.estimators import DEFAULT_POLL_INTERVAL_S, GccEstimator
from labcore import units
from labcore.jsonfile import write_json_atomic

__all__ = ["MAX_MBPS", "MIN_MBPS", "NEEDS_CAPACITY", "REWARDS", "UNIT_BPS", "OnlPacketWindow",
           "PolicyEstimator", "Reward", "RtcContract", "capacity_reward", "liner_to_log",
           "onl_reward", "qoe_reward", "rtc_contract"]

CONTRACT = "rtc-onl4"
HISTORY_CONTRACT = "rtc-hist"
STATE_SIZE = 4  # OpenNetLab's state: rate, delay, loss, last estimate
MAX_HISTORY = 64
#: rtc-hist's estimate stays within OpenNetLab's floor and the sender's default
#: ceiling (endpoints.rtc.sender_core.SenderSettings.max_bps).
HISTORY_MIN_BPS, HISTORY_MAX_BPS = 10_000.0, 30_000_000.0
STEP_MS = 60  # OpenNetLab BandwidthEstimator(step_time=60)
DEFAULT_START_BPS = 300_000
FALLBACKS = ("keep", "gcc")
CLIENT_SUMMARY = "agent_client.json"


class OnlPacketWindow:
    """OpenNetLab's ``PacketRecord`` restricted to what a 60 ms state reads.

    Packets older than the window behind the newest one are dropped (their
    ``_get_result_list`` walks back from the newest packet's receive time and
    never looks further), so memory stays bounded over long runs."""

    def __init__(self, interval_ms: float = STEP_MS) -> None:
        self.interval_ms = interval_ms
        # (receive ms, delay ms relative to the first packet, payload bytes, lost before it,
        #  estimate in force when it was reported)
        self.packets: deque[tuple[float, float, int, int, float]] = deque()
        self._last_seq: dict[int, int] = {}
        self._first_owd: float | None = None

    def on_packet(self, stats: dict[str, Any], prediction_bps: float) -> None:
        ssrc, seq = stats["ssrc"], stats["sequence_number"]
        loss = max(0, seq - self._last_seq[ssrc] - 1) if ssrc in self._last_seq else 0
        self._last_seq[ssrc] = seq
        arrival, send = stats["arrival_time_ms"], stats["send_time_ms"]
        if self._first_owd is None:
            self._first_owd = arrival - send
        self.packets.append((arrival, (arrival - send) - self._first_owd,
                             stats["payload_size"], loss, prediction_bps))
        start = arrival - self.interval_ms
        while self.packets and self.packets[0][0] <= start:
            self.packets.popleft()

    def state(self) -> list[float]:
        """[receive_rate_bps, mean_delay_ms, loss_ratio, last_estimate_bps]."""
        if not self.packets:
            return [0.0, 0.0, 0.0, 0.0]
        newest = self.packets[-1][0]
        window = [p for p in self.packets if p[0] > newest - self.interval_ms]
        received = sum(p[2] for p in window)
        lost = sum(p[3] for p in window)
        rate = received * 8 / self.interval_ms * 1000
        delay = sum(p[1] for p in window) / len(window)
        loss = lost / (lost + len(window))
        return [float(rate), float(delay), float(loss), float(self.packets[-1][4])]


@dataclass(frozen=True)
class RtcContract:
    """What an RTC policy flow sends its agent and how it reads the reply.

    * ``rtc-onl4`` (``history`` 1): OpenNetLab's state of the last window;
      the reply is the estimate in bit/s, as their gym example serves it.
    * ``rtc-hist``: the last ``history`` states, newest first (zeros until the
      call has had that many polls), so the policy sees trends (the delay
      gradient GCC reads, the rate it has already tried); the reply is a
      factor on the estimate in force, kept within
      [``HISTORY_MIN_BPS``, ``HISTORY_MAX_BPS``]. A history of intervals and
      the last actions is the state of mvfst-rl (Sivakumar et al., "MVFST-RL",
      2019) and of the MMSys'24 bandwidth-estimation challenge; a relative
      action (mvfst-rl's cwnd changes, Aurora's rate changes: Jay et al.,
      ICML 2019) lets a policy trained on slow links probe a fast one.
    """

    name: str = CONTRACT
    history: int = 1

    @property
    def relative(self) -> bool:
        return self.name == HISTORY_CONTRACT

    @property
    def obs_size(self) -> int:
        return STATE_SIZE * self.history

    def receiver_options(self) -> str:
        """What a ``policy:SOCKET?...`` argument adds for this contract (nothing
        for ``rtc-onl4``, the receiver's default)."""
        return f"&contract={self.name}&history={self.history}" if self.relative else ""


def rtc_contract(name: str, obs_size: int) -> RtcContract:
    """The contract a checkpoint declares (its name and observation size)."""
    if name == CONTRACT and obs_size == STATE_SIZE:
        return RtcContract()
    history, rest = divmod(obs_size, STATE_SIZE)
    if name == HISTORY_CONTRACT and rest == 0 and 1 <= history <= MAX_HISTORY:
        return RtcContract(HISTORY_CONTRACT, history)
    raise ValueError(f"no RTC contract {name!r} with {obs_size} observation values: "
                     f"{CONTRACT} takes {STATE_SIZE}, {HISTORY_CONTRACT} {STATE_SIZE} × "
                     f"1..{MAX_HISTORY} intervals")


class PolicyEstimator:
    """AlphaRTC's estimator interface, answered by the agent (module docstring)."""

    def __init__(self, client: Decider, *, fallback: str = "keep",
                 start_bps: int = DEFAULT_START_BPS, first_wait_s: float = 0.5,
                 window_ms: float = STEP_MS, interval_s: float | None = None,
                 contract: RtcContract | None = None) -> None:
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}")
        self.client = client
        self.fallback = fallback
        self.contract = contract or RtcContract()
        self.interval_s = interval_s  # how often the receiver asks (for the summary)
        self.window = OnlPacketWindow(window_ms)
        self.gcc = GccEstimator(start_bps) if fallback == "gcc" else None
        self.reported = False
        self._past: deque[list[float]] = deque(maxlen=self.contract.history - 1)
        self.estimate_bps = float(start_bps)
        # Their Estimator.__init__ asks the model once on a zero state.
        first = client.decide([0.0] * self.contract.obs_size, wait_s=first_wait_s)
        if first.action is not None:
            self.estimate_bps = self.applied(float(first.action[0]))
        self.policy_estimates = 0
        self.fallback_estimates = 0

    def applied(self, action: float) -> float:
        """The estimate a reply sets: the action itself, or (``rtc-hist``) the
        estimate in force times the action, within the contract's bounds."""
        if not self.contract.relative:
            return action
        return min(max(self.estimate_bps * action, HISTORY_MIN_BPS), HISTORY_MAX_BPS)

    def observation(self, state: list[float]) -> list[float]:
        """What the agent is sent for ``state``: it, then the states of earlier
        decisions newest first, zeros where the call is younger than the history."""
        if self.contract.history == 1:  # rtc-onl4: the state itself, every decision
            return state
        rows = [state, *itertools.islice(self._past, self.contract.history - 1)]
        flat = [x for row in rows for x in row]
        return flat + [0.0] * (self.contract.obs_size - len(flat))

    def report_states(self, stats: dict[str, Any]) -> None:
        self.reported = True
        self.window.on_packet(stats, self.estimate_bps)
        if self.gcc is not None:
            self.gcc.report_states(stats)

    def get_estimated_bandwidth(self) -> int:
        gcc_bps = self.gcc.get_estimated_bandwidth() if self.gcc is not None else None
        if not self.reported:  # their last_call check: no new packets, same estimate
            return int(self.estimate_bps)
        self.reported = False
        state = self.window.state()
        reward = onl_reward(state)
        decision = self.client.decide(self.observation(state), reward)
        self._past.appendleft(state)
        if decision.action is not None:
            self.estimate_bps = self.applied(float(decision.action[0]))
            self.policy_estimates += 1
        elif gcc_bps is not None:
            self.estimate_bps = float(gcc_bps)
            self.fallback_estimates += 1
        else:
            self.fallback_estimates += 1
        return int(self.estimate_bps)

    def summary(self) -> dict[str, Any]:
        return {**self.client.summary(), "fallback": self.fallback,
                "contract": self.contract.name, "history": self.contract.history,
                "decision_interval_ms": (None if self.interval_s is None
                                         else round(self.interval_s * 1e3, 3)),
                "window_ms": self.window.interval_ms,
                "policy_estimates": self.policy_estimates,
                "fallback_estimates": self.fallback_estimates}


def parse_policy_argument(argument: str) -> tuple[str, dict[str, str]]:
    """``SOCKET?deadline=1ms&fallback=gcc&flow=7&window=60ms`` → (socket, options)."""
    path, _, query = argument.partition("?")
    options = dict(urllib.parse.parse_qsl(query, strict_parsing=False))
    unknown = set(options) - {"deadline", "fallback", "flow", "start", "window", "contract",
                              "history"}
    if not path or unknown:
        raise PluginError(f"bad policy estimator {argument!r}", where="--estimator policy:...",
                          fix="write policy:SOCKET[?deadline=1ms&fallback=keep|gcc&flow=N"
                              "&window=60ms&contract=rtc-onl4|rtc-hist&history=N]")
    return path, options


_created: list[tuple[PolicyEstimator, Path | None]] = []


def make_policy_estimator(argument: str, log_dir: Path | None = None,
                          interval_s: float | None = None) -> PolicyEstimator:
    path, options = parse_policy_argument(argument)
    try:
        deadline = units.parse_duration(options.get("deadline", "1ms"), bare="s")
        window = units.parse_duration(options.get("window", f"{STEP_MS}ms"), bare="s")
        flow = int(options["flow"]) if "flow" in options else None
        start = units.parse_rate(str(options.get("start", DEFAULT_START_BPS)), bare="bit")
        history = int(options.get("history", "1"))
        contract = rtc_contract(options.get("contract", CONTRACT), STATE_SIZE * history)
    except ValueError as exc:
        raise PluginError(f"bad policy estimator option: {exc}", where=f"policy:{argument}",
                          fix="deadline and window like 1ms; flow, start and history as "
                              f"numbers; history {MAX_HISTORY} at most, 1 with {CONTRACT}"
                          ) from None
    fallback = options.get("fallback", "keep")
    if fallback not in FALLBACKS or deadline <= 0 or window <= 0:
        raise PluginError(f"fallback {fallback!r} / deadline {deadline} / window {window}",
                          where=f"policy:{argument}",
                          fix=f"fallback one of {', '.join(FALLBACKS)}; a positive deadline "
                              "and window")
    client = AgentClient(path, policy=contract.name, obs_size=contract.obs_size, action_size=1,
                         deadline_s=deadline, flow=flow)
    estimator = PolicyEstimator(client, fallback=fallback, start_bps=start,
                                window_ms=window * 1e3, interval_s=interval_s,
                                contract=contract)
    _created.append((estimator, log_dir))
    return estimator


def _option(argv: Sequence[str], name: str) -> str | None:
    """The value of receiver option ``name`` in ``argv`` (the receiver parses it itself)."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def _poll_interval(argv: Sequence[str]) -> float | None:
    from endpoints.rtc.app_common import parse_seconds

    text = _option(argv, "--poll-interval")
    try:
        return parse_seconds(text) if text is not None else None
    except (ValueError, argparse.ArgumentTypeError):
        return None  # the receiver's parser says what is wrong with it


def main(argv: Sequence[str] | None = None) -> int:
    from endpoints.rtc import receiver_app

    args = list(sys.argv[1:] if argv is None else argv)
    log_text = _option(args, "--log-dir")
    log_dir = Path(log_text) if log_text is not None else None
    interval = _poll_interval(args) or DEFAULT_POLL_INTERVAL_S
    receiver_app.register_estimator_kind(
        "policy", lambda argument: make_policy_estimator(argument, log_dir, interval))
    try:
        return receiver_app.main(args)
    finally:
        for estimator, directory in _created:
            estimator.client.close()
            if directory is not None and directory.is_dir():
                write_json_atomic(directory / CLIENT_SUMMARY, estimator.summary(), compact=True)
        _created.clear()


if __name__ == "__main__":
    sys.exit(main())
