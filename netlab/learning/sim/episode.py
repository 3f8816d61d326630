"""Run one simulated call under a served policy (or a fixed estimate) and score it.

A :class:`~netlab.agent.policies.base.Policy` is asked exactly as the lab's
agent asks it: the raw ``rtc-onl4`` state in, a physical estimate out, one
batch of one per poll, deterministic (``explore=False``, the lab's default),
with the last reward for recurrent models. Its first answer is to a zero
state before any packet, as ``PolicyEstimator`` asks. Metrics and the
OpenNetLab score come from the simulated packet records through
``endpoints.metrics`` (the code that scores emulated runs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netlab.agent.policies.base import Policy
from netlab.learning.sim.core import RtcSimulation, SimConfig
from shaping.traces import Trace

#: The results contract's per-flow keys shown side by side with the lab's.
HEADLINE = ("recv_rate_bps", "delay_p95_ms", "loss")


@dataclass
class EpisodeResult:
    trace: str
    seed: int
    sim_s: float
    wall_s: float
    polls: int
    decisions: int
    mean_reward: float
    metrics: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.sim_s / self.wall_s if self.wall_s > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {"trace": self.trace, "seed": self.seed, "sim_s": self.sim_s,
                "wall_s": round(self.wall_s, 4), "speed": round(self.speed, 1),
                "polls": self.polls, "decisions": self.decisions,
                "mean_reward": self.mean_reward, "metrics": self.metrics,
                "scores": self.scores, "drops": self.drops}


def run_episode(controller: Policy | float, trace: Trace, config: SimConfig | None = None,
                seed: int = 0) -> EpisodeResult:
    """One call over ``trace``: ``controller`` a policy, or a fixed estimate in bps."""
    config = config or SimConfig()
    started = time.perf_counter()
    sim = RtcSimulation(trace, config, seed)
    policy = controller if isinstance(controller, Policy) else None
    state = policy.initial_state() if policy is not None else None
    reward = 0.0

    def answer(observation: list[float]) -> float:
        nonlocal state
        if policy is None:
            return float(controller)  # type: ignore[arg-type]
        out = policy.act(np.asarray([observation], dtype=np.float32), [state], explore=False,
                         rewards=np.asarray([reward], dtype=np.float32))
        state = out.states[0]
        return float(out.actions[0, 0])

    sim.set_initial_estimate(answer([0.0, 0.0, 0.0, 0.0]))
    rewards: list[float] = []
    while sim.advance():
        observation = sim.state()
        reward = sim.reward()
        rewards.append(reward)
        sim.decide(answer(observation) if sim.fresh or not config.hold_without_packets
                   else sim.estimate_bps)
    wall = time.perf_counter() - started
    result = EpisodeResult(trace=trace.name, seed=seed, sim_s=sim.end_us / 1e6, wall_s=wall,
                           polls=sim.polls, decisions=sim.decisions,
                           mean_reward=float(np.mean(rewards)) if rewards else 0.0,
                           drops=dict(sim.link.drops))
    if config.record:
        summary = sim.summary()
        result.metrics, result.scores = summary.metrics, summary.scores
    return result
