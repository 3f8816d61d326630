"""Pretraining in the simulator: PPO on bundled traces for a wall-clock budget.

Each iteration collects whole simulated calls (a trace drawn from the set,
a fresh seed each) with the learner's exploring policy until a batch is
full, then runs one PPO update. Steps are the lab's receiver polls (200 ms
by default, so the checkpoint meets the lab's timing; OpenNetLab's gym uses
60 ms), observations and rewards are the lab's (``SimEnv``). When the
budget is spent the checkpoint is written in the project's format with its
training config, seed, versions and evaluation in ``metadata``, next to a
CSV of the training curves, and evaluated against OpenNetLab's pretrained
policy and a fixed estimate on every trace of the set.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from endpoints.agent_rtc import MAX_HISTORY, rtc_contract
from netlab.agent.policies import opennetlab, rtc_history
from netlab.agent.policies.base import Policy
from netlab.errors import NetlabError
from netlab.learning.ppo import PPOConfig, PPOLearner
from netlab.learning.rollout import Rollout
from netlab.learning.sim.core import LAB_POLL_S, SimConfig
from netlab.learning.sim.env import SimEnv
from netlab.learning.sim.episode import Controller, EpisodeResult, run_episode
from shaping.spec import LinkShape
from shaping.traces import Trace, load_trace
from shaping.traces.corpus import matching

DEFAULT_TRACES = ("opennetlab/*", "steps/*")
CURVE_COLUMNS = ("update", "wall_s", "sim_s", "steps", "episodes", "episode_reward",
                 "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac",
                 "explained_variance", "std")


#: Short horizon (γ = 0.9: about 2 s at 200 ms steps; an estimate shows in the
#: receive rate within the encoder's ~1 s lag) and a fast learning rate: the
#: budget is minutes, not OpenNetLab's hours.
PRETRAIN_PPO = PPOConfig(lr=1e-3, gamma=0.9, gae_lambda=0.95, epochs=8, minibatch_size=128)


@dataclass(frozen=True)
class PretrainConfig:
    traces: tuple[str, ...] = DEFAULT_TRACES
    minutes: float = 3.0
    updates: int | None = None  # a sample budget (PPO updates of batch_steps) instead of minutes
    seed: int = 0
    step_s: float = LAB_POLL_S
    episode_s: float = 30.0
    batch_steps: int = 1024
    start: str | None = None  # a checkpoint to start from; None: a fresh initial policy
    fixed_rate_bps: float = 1_000_000.0
    reward: str = "onl"  # endpoints.agent_rtc.REWARDS: onl (OpenNetLab's) or qoe
    #: a fresh policy's states per observation: 1 is OpenNetLab's rtc-onl4, more an
    #: rtc-hist policy (relative actions); a ``start`` checkpoint brings its own
    history: int = 1
    ppo: PPOConfig = field(default_factory=lambda: PRETRAIN_PPO)


@dataclass
class PretrainResult:
    checkpoint: Path
    curves: Path
    updates: int
    steps: int
    sim_s: float
    wall_s: float
    evaluation: dict[str, dict[str, float | None]]


def fresh_checkpoint(config: PretrainConfig) -> dict[str, Any]:
    """The untrained policy pretraining starts from: OpenNetLab's shape, or an
    ``rtc-hist`` policy of ``config.history`` states."""
    if config.history == 1:
        return opennetlab.initial_checkpoint(config.seed)
    try:
        return rtc_history.initial_checkpoint(config.seed, config.history,
                                              step_ms=round(config.step_s * 1000))
    except ValueError as exc:
        raise NetlabError(f"history {config.history}: {exc}", where="--history",
                          fix=f"give 1 (OpenNetLab's state) to {MAX_HISTORY} states") from None


def select_traces(patterns: Sequence[str]) -> list[Trace]:
    """Corpus traces whose short names match any pattern (fnmatch), or files by path."""
    chosen: list[str] = []
    for pattern in patterns:
        hits, _ = matching([pattern])
        if not hits and Path(pattern).is_file():
            hits = [pattern]
        if not hits:
            raise NetlabError(f"no trace matches {pattern!r}", where="--traces",
                              fix="use names or patterns from `netlab traces list`, "
                                  "e.g. 'opennetlab/*,steps/*'")
        chosen += [h for h in hits if h not in chosen]
    return [load_trace(name) for name in chosen]


def collect(learner: PPOLearner, env: SimEnv, traces: Sequence[Trace], steps: int,
            rng: np.random.Generator) -> tuple[Rollout, list[float], float]:
    """Whole exploring episodes until ``steps`` are gathered: (batch, episode mean
    rewards, simulated seconds)."""
    obs_l: list[np.ndarray[Any, Any]] = []
    act_l: list[np.ndarray[Any, Any]] = []
    logp_l: list[float] = []
    rew_l: list[float] = []
    next_l: list[np.ndarray[Any, Any]] = []
    trunc_l: list[bool] = []
    episode_rewards: list[float] = []
    sim_s = 0.0
    while len(obs_l) < steps:
        trace = traces[int(rng.integers(len(traces)))]
        obs, _ = env.reset(options={"trace": trace, "seed": int(rng.integers(1 << 31))})
        rewards: list[float] = []
        while True:
            action, log_prob, _ = learner.act(obs[None], explore=True, generator=rng)
            next_obs, reward, terminated, truncated, info = env.step(action[0])
            obs_l.append(obs)
            act_l.append(action[0])
            logp_l.append(float(log_prob[0]))
            rew_l.append(float(reward))
            next_l.append(next_obs)
            trunc_l.append(bool(truncated or terminated))
            rewards.append(float(reward))
            obs = next_obs
            if terminated or truncated:
                sim_s += float(info["t_s"])
                break
        episode_rewards.append(float(np.mean(rewards)))
    rollout = Rollout(obs=np.array(obs_l), actions=np.array(act_l), log_prob=np.array(logp_l),
                      rewards=np.array(rew_l), next_obs=np.array(next_l),
                      truncated=np.array(trunc_l))
    return rollout, episode_rewards, sim_s


def evaluate(controllers: dict[str, Controller], traces: Sequence[Trace],
             config: SimConfig, seed: int) -> dict[str, dict[str, float | None]]:
    """Mean reward (policies: the reward at their polls), OpenNetLab score, rate, p95
    delay and loss per controller over ``traces``."""
    out: dict[str, dict[str, float | None]] = {}
    for name, controller in controllers.items():
        results: list[EpisodeResult] = [run_episode(controller, trace, config, seed)
                                        for trace in traces]
        out[name] = {
            "mean_reward": (float(np.mean([r.mean_reward for r in results]))
                            if isinstance(controller, Policy) else None),
            "network_score": float(np.mean([r.scores.get("network") or 0.0 for r in results])),
            "recv_rate_bps": float(np.mean([r.metrics.get("recv_rate_bps") or 0.0
                                            for r in results])),
            "delay_p95_ms": float(np.mean([r.metrics.get("delay_p95_ms") or 0.0
                                           for r in results])),
            "loss": float(np.mean([r.metrics.get("loss") or 0.0 for r in results])),
        }
    return out


def _metadata(config: PretrainConfig, sim_config: SimConfig, traces: Sequence[Trace]
              ) -> dict[str, Any]:
    return {"origin": f"netlab pretrain (PPO in the simulator, seed {config.seed})",
            "reward": config.reward,
            "step_ms": round(config.step_s * 1000), "window_ms": sim_config.window_ms,
            "traces": [t.name for t in traces],
            "pretrain": {k: v for k, v in asdict(config).items() if k != "ppo"}}


def pretrain(config: PretrainConfig, out: Path, *,
             baselines: dict[str, Controller] | None = None,
             report: Callable[[dict[str, float]], None] | None = None,
             link: LinkShape | None = None, traces: Sequence[Trace] | None = None,
             snapshots: Mapping[int, Path] | None = None) -> PretrainResult:
    """Train for ``config.minutes`` of wall-clock time (or ``config.updates`` updates)
    and write ``out`` (+ ``.csv``); ``link`` is the bottleneck's base shape under
    every trace (default: none); ``traces`` replaces ``config.traces`` (e.g. the
    windows of a scenario set); ``snapshots`` also saves the policy after those
    update counts (a sample-matched arm cut from a longer run)."""
    traces = list(traces) if traces is not None else select_traces(config.traces)
    started = time.monotonic()
    rng = np.random.default_rng(config.seed)
    ppo = replace(config.ppo, seed=config.seed)
    learner = PPOLearner(config.start if config.start else fresh_checkpoint(config), ppo)
    sim_config = SimConfig(step_s=config.step_s, duration_s=config.episode_s,
                           link=link or LinkShape(), record=False, reward=config.reward,
                           contract=rtc_contract(str(learner.spec["contract"]),
                                                 learner.obs_size))
    env = SimEnv(traces, sim_config, action=learner.spec.get("action"))
    curves_path = out.with_suffix(".csv")
    curves_path.parent.mkdir(parents=True, exist_ok=True)
    total_sim = 0.0
    total_steps = 0
    episodes = 0
    budget = config.minutes * 60
    with curves_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CURVE_COLUMNS)
        while (learner.updates < config.updates if config.updates is not None
               else time.monotonic() - started < budget or learner.updates == 0):
            rollout, episode_rewards, sim_s = collect(learner, env, traces, config.batch_steps,
                                                      rng)
            stats = learner.update(rollout)
            total_sim += sim_s
            total_steps += len(rollout)
            episodes += len(episode_rewards)
            row = {"update": float(learner.updates), "wall_s": time.monotonic() - started,
                   "sim_s": total_sim, "steps": float(total_steps), "episodes": float(episodes),
                   "episode_reward": float(np.mean(episode_rewards)), **stats}
            writer.writerow([f"{row[c]:.6g}" for c in CURVE_COLUMNS])
            handle.flush()
            if report is not None:
                report(row)
            if snapshots and learner.updates in snapshots:
                learner.save(snapshots[learner.updates],
                             {**_metadata(config, sim_config, traces), "training": {
                                 "updates": learner.updates, "steps": total_steps,
                                 "episodes": episodes}}, resumable=False)
    wall = time.monotonic() - started
    eval_config = replace(sim_config, record=True)
    controllers: dict[str, Controller] = {"trained": learner.policy(), **(baselines or {})}
    evaluation = evaluate(controllers, traces, eval_config, config.seed)
    metadata = {**_metadata(config, sim_config, traces),
                "training": {"updates": learner.updates, "steps": total_steps,
                             "episodes": episodes, "sim_s": round(total_sim, 1),
                             "wall_s": round(wall, 1)},
                "evaluation": evaluation}
    learner.save(out, metadata, resumable=False)
    return PretrainResult(out, curves_path, learner.updates, total_steps, total_sim, wall,
                          evaluation)
