"""Run one simulated call under a controller (a policy, GCC or a fixed estimate) and score it.

A :class:`~netlab.agent.policies.base.Policy` is asked exactly as the lab's
agent asks it: the raw state of its contract (``rtc-onl4`` or ``rtc-hist``)
in, an estimate (or a factor on it) out, one batch of one per poll,
deterministic (``explore=False``, the lab's default), with the last reward
for recurrent models. Its first answer is to a zero
state before any packet, as ``PolicyEstimator`` asks. Any other controller
is what a scenario's ``estimator:`` says (``gcc``, ``fixed:RATE``,
``plugin:PATH``) and runs as the lab runs it. Metrics and the OpenNetLab
score come from the simulated packet records through ``endpoints.metrics``
(the code that scores emulated runs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from endpoints.agent_rtc import rtc_contract
from netlab.agent.policies.base import Policy, PolicyInfo
from netlab.errors import NetlabError
from netlab.learning.sim.core import POLICY, RtcSimulation, SimConfig
from netlab.learning.sim.env import step_reward
from netlab.scenario.model import Estimator
from shaping.traces import Trace

#: The results contract's per-flow keys shown side by side with the lab's.
HEADLINE = ("recv_rate_bps", "delay_p95_ms", "loss")
#: What a simulated call can be run under: a policy, a fixed estimate in bit/s,
#: or a scenario's estimator (``Estimator("gcc")``, ...).
Controller = Policy | float | Estimator


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


def controller_estimator(controller: Controller) -> Estimator:
    """The scenario estimator a controller runs as (a policy: ``policy``)."""
    if isinstance(controller, Policy):
        return POLICY
    if isinstance(controller, Estimator):
        return controller
    return Estimator("fixed", rate_bps=round(controller))


def with_contract(config: SimConfig, info: PolicyInfo) -> SimConfig:
    """``config`` sending what the policy ``info`` reads (``rtc-onl4`` or ``rtc-hist``)."""
    try:
        contract = rtc_contract(info.contract, info.obs_size)
    except ValueError as exc:
        raise NetlabError(f"this policy cannot estimate an RTC flow: {exc}",
                          where=f"policy contract {info.contract}",
                          fix="use an rtc-onl4 or rtc-hist checkpoint") from None
    return config if contract == config.contract else replace(config, contract=contract)


def simulate(controller: Controller, trace: Trace, config: SimConfig, seed: int = 0,
             base_dir: Path | None = None) -> tuple[RtcSimulation, list[float]]:
    """One call over ``trace`` under ``controller``, run to its end: the simulation
    (its records) and the rewards seen at a policy's polls."""
    if isinstance(controller, Policy):
        config = with_contract(config, controller.info)
    sim = RtcSimulation(trace, config, seed, controller_estimator(controller), base_dir)
    if isinstance(controller, Policy):
        return sim, _drive(sim, controller)
    while sim.advance():
        pass
    return sim, []


def run_episode(controller: Controller, trace: Trace, config: SimConfig | None = None,
                seed: int = 0, base_dir: Path | None = None) -> EpisodeResult:
    """One call over ``trace`` under ``controller``, scored."""
    config = config or SimConfig()
    started = time.perf_counter()
    sim, rewards = simulate(controller, trace, config, seed, base_dir)
    wall = time.perf_counter() - started
    result = EpisodeResult(trace=trace.name, seed=seed, sim_s=sim.end_ns / 1e9, wall_s=wall,
                           polls=sim.polls or sim.receiver.counters.estimator_polls,
                           decisions=sim.decisions,
                           mean_reward=float(np.mean(rewards)) if rewards else 0.0,
                           drops=dict(sim.link.drops))
    if config.record:
        summary = sim.summary()
        result.metrics, result.scores = summary.metrics, summary.scores
    return result


def _drive(sim: RtcSimulation, policy: Policy) -> list[float]:
    """Answer every poll of ``sim`` with ``policy``; the rewards seen at the polls."""
    state = policy.initial_state()
    reward = 0.0

    def answer(observation: list[float]) -> float:
        nonlocal state
        out = policy.act(np.asarray([observation], dtype=np.float32), [state], explore=False,
                         rewards=np.asarray([reward], dtype=np.float32))
        state = out.states[0]
        return float(out.actions[0, 0])

    sim.set_initial_estimate(answer([0.0] * sim.config.contract.obs_size))
    rewards: list[float] = []
    while sim.advance():
        observation = sim.observation()
        reward = step_reward(sim, sim.config.reward)
        rewards.append(reward)
        # A poll without new packets keeps the estimate and asks no one (PolicyEstimator).
        sim.decide(answer(observation) if sim.fresh else sim.estimate_bps)
    return rewards
