"""RTC receiver estimator served by the host's policy agent (estimator kind ``policy``).

    python -m endpoints.agent_rtc --bind HOST:PORT \\
        --estimator 'policy:/run/netlab/LAB/agents/bob.sock?deadline=1ms&fallback=gcc' ...

runs :mod:`endpoints.rtc.receiver_app` unchanged with the ``policy`` kind
registered (:func:`endpoints.rtc.receiver_app.register_estimator_kind`).
Every poll (``--poll-interval``, 200 ms by default, down to 10 ms) the
estimator computes OpenNetLab's state over the packets of the last 60 ms,
exactly as their gym example's ``BandwidthEstimator.py`` with
``alphartc_gym/utils/packet_record.py`` does (OpenNetLab/gym-example,
``rtc_env.py``): receive rate (payload bytes × 8 / 60 ms), mean one-way
delay relative to the first packet's, loss ratio from sequence gaps, and
the last estimate. It sends them raw (bps, ms, ratio, bps: contract
``rtc-onl4``; the agent normalises as the policy was trained) with the
reward of the previous action (their ``rtc_env``: normalised rate − 0.2 ×
loss) and uses the reply if it arrives within the deadline. Otherwise the
fallback acts: ``keep`` the last estimate, or ``gcc`` (a receiver-side GCC
fed every packet all along) until replies are timely again.

The wait for a reply is bounded by the deadline (1 ms by default) and the
estimate goes into REMB right after, so "observation sent → action applied"
is what is timed. On exit ``agent_client.json`` in ``--log-dir`` holds the
decisions, misses, fallback time and every round-trip time.
"""

from __future__ import annotations

import json
import math
import sys
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from endpoints.agent_client import AgentClient
from endpoints.rtc.errors import PluginError
from endpoints.rtc.estimators import GccEstimator

CONTRACT = "rtc-onl4"
STEP_MS = 60  # OpenNetLab BandwidthEstimator(step_time=60)
MIN_MBPS, MAX_MBPS, UNIT_BPS = 0.01, 8.0, 1e6
DEFAULT_START_BPS = 300_000
FALLBACKS = ("keep", "gcc")
CLIENT_SUMMARY = "agent_client.json"


def liner_to_log(bps: float) -> float:
    """OpenNetLab's ``liner_to_log`` (used here only for the reward)."""
    value = min(max(bps / UNIT_BPS, MIN_MBPS), MAX_MBPS)
    return (math.log(value) - math.log(MIN_MBPS)) / (math.log(MAX_MBPS) - math.log(MIN_MBPS))


def onl_reward(state: Sequence[float]) -> float:
    """The reward of OpenNetLab's ``rtc_env.step`` for a raw state from
    :meth:`OnlPacketWindow.state`: normalised receive rate − 0.2 × loss ratio
    (shared by this estimator and netlab's simulator, so both reward alike)."""
    return liner_to_log(state[0]) - 0.2 * state[2]


# OpenNetLab's network score (Challenge net_eval_method.py, endpoints.metrics.opennetlab):
# 20 x delay score (delay relative to the stream's first packet, capped at 400 ms)
# + 20 x receive-rate score + 30 x (1 - loss), out of 70.
QOE_MAX_DELAY_MS = 400.0
QOE_WEIGHTS = (20.0, 20.0, 30.0)  # delay, receive rate, loss


def qoe_reward(state: Sequence[float]) -> float:
    """The network score's terms per step, in [0, 1], for a raw state.

    The score itself is taken over a whole call against a ground-truth rate a
    flow cannot know, so per step the receive rate enters log-normalised as in
    :func:`onl_reward`, and the delay as the score's linear 400 ms scale on the
    state's mean delay (already relative to the stream's first packet, as the
    score's). Unlike :func:`onl_reward` it prices queueing delay, which is
    what the score punishes most.
    """
    w_delay, w_rate, w_loss = QOE_WEIGHTS
    delay = (QOE_MAX_DELAY_MS - min(max(state[1], 0.0), QOE_MAX_DELAY_MS)) / QOE_MAX_DELAY_MS
    loss = min(max(state[2], 0.0), 1.0)
    return (w_delay * delay + w_rate * liner_to_log(state[0]) + w_loss * (1.0 - loss)) / sum(
        QOE_WEIGHTS)


#: Rewards a learner may train on, by name; each is a function of the raw state
#: that follows an action, so a learner can recompute it from logged observations.
REWARDS: dict[str, Callable[[Sequence[float]], float]] = {"onl": onl_reward, "qoe": qoe_reward}


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


class PolicyEstimator:
    """AlphaRTC's estimator interface, answered by the agent (module docstring)."""

    def __init__(self, client: AgentClient, *, fallback: str = "keep",
                 start_bps: int = DEFAULT_START_BPS, first_wait_s: float = 0.5) -> None:
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}")
        self.client = client
        self.fallback = fallback
        self.window = OnlPacketWindow()
        self.gcc = GccEstimator(start_bps) if fallback == "gcc" else None
        self.reported = False
        # Their Estimator.__init__ asks the model once on a zero state.
        first = client.decide([0.0, 0.0, 0.0, 0.0], wait_s=first_wait_s)
        self.estimate_bps = float(first.action[0]) if first.action is not None else float(
            start_bps)
        self.policy_estimates = 0
        self.fallback_estimates = 0

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
        decision = self.client.decide(state, reward)
        if decision.action is not None:
            self.estimate_bps = float(decision.action[0])
            self.policy_estimates += 1
        elif gcc_bps is not None:
            self.estimate_bps = float(gcc_bps)
            self.fallback_estimates += 1
        else:
            self.fallback_estimates += 1
        return int(self.estimate_bps)

    def summary(self) -> dict[str, Any]:
        return {**self.client.summary(), "fallback": self.fallback,
                "policy_estimates": self.policy_estimates,
                "fallback_estimates": self.fallback_estimates}


def _seconds(text: str) -> float:
    for suffix, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def parse_policy_argument(argument: str) -> tuple[str, dict[str, str]]:
    """``SOCKET?deadline=1ms&fallback=gcc&flow=7`` → (socket, options)."""
    path, _, query = argument.partition("?")
    options = dict(urllib.parse.parse_qsl(query, strict_parsing=False))
    unknown = set(options) - {"deadline", "fallback", "flow", "start"}
    if not path or unknown:
        raise PluginError(f"bad policy estimator {argument!r}", where="--estimator policy:...",
                          fix="write policy:SOCKET[?deadline=1ms&fallback=keep|gcc&flow=N]")
    return path, options


_created: list[tuple[PolicyEstimator, Path | None]] = []


def make_policy_estimator(argument: str, log_dir: Path | None = None) -> PolicyEstimator:
    path, options = parse_policy_argument(argument)
    try:
        deadline = _seconds(options.get("deadline", "1ms"))
        flow = int(options["flow"]) if "flow" in options else None
        start = int(float(options.get("start", DEFAULT_START_BPS)))
    except ValueError as exc:
        raise PluginError(f"bad policy estimator option: {exc}", where=f"policy:{argument}",
                          fix="deadline like 1ms, flow and start as numbers") from None
    fallback = options.get("fallback", "keep")
    if fallback not in FALLBACKS or deadline <= 0:
        raise PluginError(f"fallback {fallback!r} / deadline {deadline}",
                          where=f"policy:{argument}",
                          fix=f"fallback one of {', '.join(FALLBACKS)}; a positive deadline")
    client = AgentClient(path, policy=CONTRACT, obs_size=4, action_size=1, deadline_s=deadline,
                         flow=flow)
    estimator = PolicyEstimator(client, fallback=fallback, start_bps=start)
    _created.append((estimator, log_dir))
    return estimator


def _log_dir(argv: Sequence[str]) -> Path | None:
    for i, arg in enumerate(argv):
        if arg == "--log-dir" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--log-dir="):
            return Path(arg.split("=", 1)[1])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from endpoints.rtc import receiver_app

    args = list(sys.argv[1:] if argv is None else argv)
    log_dir = _log_dir(args)
    receiver_app.register_estimator_kind(
        "policy", lambda argument: make_policy_estimator(argument, log_dir))
    try:
        return receiver_app.main(args)
    finally:
        for estimator, directory in _created:
            estimator.client.close()
            if directory is not None and directory.is_dir():
                target = directory / CLIENT_SUMMARY
                target.with_suffix(".tmp").write_text(
                    json.dumps(estimator.summary(), separators=(",", ":")))
                target.with_suffix(".tmp").replace(target)
        _created.clear()


if __name__ == "__main__":
    sys.exit(main())
