"""``Rollout``: the batch a PPO update consumes, from the simulator or from a lab.

One time-ordered sequence of steps; several episodes or flows go end to end,
each one's last step marked ``terminated`` (no bootstrap) or ``truncated``
(bootstrapped from ``next_obs``). Row ``t`` is one decision:

* ``obs[t]``: the observation the policy saw, in the contract's raw units
  (what a flow sends the agent; the learner normalises it as the checkpoint
  says, so sim and lab rows look alike);
* ``actions[t]``: the action *in force* during step ``t`` in model space
  (the Gaussian sample before the checkpoint's action transform, e.g. the
  [0, 1] value that ``log`` maps to bps). For a late decision (the reply
  missed the deadline, the flow kept its previous action) that is the older
  action, not the one the policy just produced;
* ``log_prob[t]``: the behaviour policy's log-probability of ``actions[t]``
  when it was sampled (what the agent logged); V-trace compares it with the
  learner's current policy at ``obs[t]`` (:mod:`netlab.learning.ppo`);
* ``rewards[t]``: the reward that followed step ``t`` (the outcome of
  ``actions[t]``; the agent logs a reward with the *next* observation, which
  :func:`rollout_from_transitions` shifts back);
* ``next_obs[t]``: the observation after step ``t`` (only read where
  ``truncated[t]``, or on the last row);
* ``late[t]``: the decision for step ``t`` missed its deadline (counted in
  the update's metrics; the correction itself uses the log-probabilities).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from endpoints.metrics.objectives import Reward
from netlab.agent.policies.spec import ActionTransform

F32 = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]


def _bools(n: int) -> Bools:
    return np.zeros(n, dtype=np.bool_)


@dataclass
class Rollout:
    """Arrays of any numeric dtype in; float32 / bool arrays after construction."""

    obs: npt.NDArray[Any]  # [T, obs_size], raw contract units
    actions: npt.NDArray[Any]  # [T, action_size], model space
    log_prob: npt.NDArray[Any]  # [T], behaviour log-probability of actions[t]
    rewards: npt.NDArray[Any]  # [T], the reward after step t
    next_obs: npt.NDArray[Any]  # [T, obs_size]
    terminated: npt.NDArray[Any] = field(default_factory=lambda: _bools(0))  # [T]
    truncated: npt.NDArray[Any] = field(default_factory=lambda: _bools(0))  # [T]
    late: npt.NDArray[Any] = field(default_factory=lambda: _bools(0))  # [T]

    def __post_init__(self) -> None:
        n = len(self.obs)
        self.obs = np.asarray(self.obs, dtype=np.float32).reshape(n, -1)
        self.actions = np.asarray(self.actions, dtype=np.float32).reshape(n, -1)
        self.next_obs = np.asarray(self.next_obs, dtype=np.float32).reshape(n, -1)
        self.log_prob = np.asarray(self.log_prob, dtype=np.float32).reshape(n)
        self.rewards = np.asarray(self.rewards, dtype=np.float32).reshape(n)
        for name in ("terminated", "truncated", "late"):
            value = np.asarray(getattr(self, name), dtype=np.bool_).reshape(-1)
            if value.size == 0:
                value = _bools(n)
            if value.shape != (n,):
                raise ValueError(f"Rollout.{name}: {value.size} values for {n} steps")
            setattr(self, name, value)
        if n == 0:
            raise ValueError("Rollout: no steps")
        if self.next_obs.shape != self.obs.shape or len(self.actions) != n:
            raise ValueError("Rollout: obs, next_obs and actions need one row per step")
        if not (self.terminated[-1] or self.truncated[-1]):
            self.truncated[-1] = True  # the batch ends: bootstrap from next_obs

    def __len__(self) -> int:
        return len(self.obs)

    @classmethod
    def concat(cls, parts: list[Rollout]) -> Rollout:
        """Sequences end to end (each already ends terminated or truncated)."""
        def cat(name: str) -> Any:
            return np.concatenate([getattr(p, name) for p in parts])
        return cls(cat("obs"), cat("actions"), cat("log_prob"), cat("rewards"), cat("next_obs"),
                   cat("terminated"), cat("truncated"), cat("late"))


def inverse_action(transform: ActionTransform, physical: npt.NDArray[Any]) -> F32:
    """Model-space actions from physical ones (``log``/``linear``/identity transforms).

    Samples the agent clipped to [0, 1] before mapping come back clipped; their
    logged log-probability was of the unclipped sample, a small bias at the edges."""
    x = np.asarray(physical, dtype=np.float64)
    if transform.kind == "log":
        low, high = np.log(transform.low), np.log(transform.high)
        y = (np.log(np.maximum(x / transform.unit, 1e-300)) - low) / (high - low)
        mapped: F32 = np.clip(y, 0.0, 1.0).astype(np.float32)
        return mapped
    if transform.kind == "linear":
        span = np.where(transform.highs > transform.lows, transform.highs - transform.lows, 1)
        return np.clip((x - transform.lows) / span, 0.0, 1.0).astype(np.float32)
    if transform.kind == "identity":
        same: F32 = x.astype(np.float32)
        return same
    raise ValueError(f"action transform {transform.kind!r} has no inverse for PPO")


def rollout_from_transitions(rows: npt.NDArray[Any], transform: ActionTransform, *,
                             deadline_ns: int | None = None, reward: Reward | None = None,
                             capacity: Callable[[int], float] | None = None) -> Rollout:
    """A Rollout from the agent's transition rows (``netlab.agent.transitions``).

    Rows are grouped by flow and ordered by ``seq``; within a flow, the
    reward logged with row ``t+1`` (which came with its observation) is the
    outcome of row ``t``'s action, and row ``t+1``'s observation is row
    ``t``'s ``next_obs``. A flow's last row has no outcome yet and is left
    out; a row whose ``done`` is set ends its episode (terminated). With
    ``deadline_ns``, rows answered later than it are marked ``late`` and
    the action in force for them is the flow's previous one (its
    log-probability too), as the flow kept its last action. With ``reward``
    (a function of the raw state, ``endpoints.agent_rtc.REWARDS``), row
    ``t``'s reward is recomputed from its ``next_obs`` instead of the one the
    flow logged: a learner may train on another objective than the flow's;
    ``capacity(t_ns)`` gives it what the link offered before an observation
    sent at ``t_ns`` (rewards that need it: ``objectives.NEEDS_CAPACITY``)."""
    parts: list[Rollout] = []
    for flow in np.unique(rows["flow"]):
        chosen = rows[rows["flow"] == flow]
        chosen = chosen[np.argsort(chosen["seq"], kind="stable")]
        if len(chosen) < 2:
            continue
        actions = inverse_action(transform, chosen["action"])
        log_prob = chosen["log_prob"].astype(np.float32)
        late = _bools(len(chosen))
        if deadline_ns is not None:
            late = (chosen["t_reply_ns"] - chosen["t_request_ns"]) > deadline_ns
            for t in range(1, len(chosen)):
                if late[t]:
                    actions[t] = actions[t - 1]
                    log_prob[t] = log_prob[t - 1]
        head = slice(0, len(chosen) - 1)
        tail = slice(1, len(chosen))
        done = chosen["done"][tail].astype(np.bool_)
        rewards = chosen["reward"][tail]
        if reward is not None:
            times = chosen["t_request_ns"][tail].tolist()
            rewards = np.array([reward(state, None if capacity is None else capacity(t))
                                for state, t in zip(chosen["obs"][tail].tolist(), times,
                                                    strict=True)], dtype=np.float32)
        parts.append(Rollout(obs=chosen["obs"][head], actions=actions[head],
                             log_prob=log_prob[head], rewards=rewards,
                             next_obs=chosen["obs"][tail], terminated=done,
                             truncated=_bools(len(chosen) - 1), late=late[head]))
    if not parts:
        raise ValueError("no flow has two transitions: nothing to learn from yet")
    return Rollout.concat(parts)
