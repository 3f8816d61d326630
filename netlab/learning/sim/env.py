"""``SimEnv``: the simulated call as a gymnasium environment, OpenNetLab-style.

Spaces are OpenNetLab's gym example's (``rtc_env.GymEnv``) with the
observation left in the contract's raw units, exactly what the lab's agent
receives from a flow (``rtc-onl4``): ``Box(4)`` = [receive rate bps, mean
queuing delay ms, loss ratio, last estimate bps]; the policy's checkpoint
normalises it (``observation: opennetlab``). The action is ``Box(1)`` in
[0, 1], the actor's sigmoid output, mapped to 10 kbit/s–8 Mbit/s on a log
scale by OpenNetLab's ``log_to_linear`` (the checkpoint's ``action: log``,
the same :class:`~netlab.agent.policies.spec.ActionTransform` the agent runs).
The reward is ``SimEnv(reward=...)``, else the config's (a name in
``endpoints.metrics.objectives.REWARDS``; by default ``onl``, the reward the
lab's flows send their agent); ``capacity`` reads the trace's capacity over
the state's window (:func:`step_reward`). One
step is one receiver poll (60 ms by default, as OpenNetLab's gym; the lab's
receivers poll every 200 ms). An episode ends by time (``truncated``); nothing terminates it early.

With ``config.contract`` ``rtc-hist`` the observation is its history of
states and ``action`` (the checkpoint's) maps the output to a factor on the
estimate (:class:`endpoints.agent_rtc.RtcContract`).

``reset(seed=..., options={"trace": Trace or corpus name, "seed": sim seed})``;
without a trace option one of the env's traces is drawn with its
``np_random``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from endpoints.metrics.objectives import NEEDS_CAPACITY, REWARDS
from netlab.agent.policies import opennetlab
from netlab.agent.policies.spec import ActionTransform
from netlab.learning.sim.core import RtcSimulation, SimConfig
from shaping.traces import Trace, load_trace

ObsArray = npt.NDArray[np.float32]
_TO_BPS = ActionTransform(opennetlab.ACTION, opennetlab.ACTION_SIZE)


def action_to_bps(action: float) -> float:
    """OpenNetLab's ``log_to_linear`` (clips to [0, 1] first), via the agent's transform."""
    return float(_TO_BPS(np.array([[action]], dtype=np.float64))[0, 0])


def step_reward(sim: RtcSimulation, name: str) -> float:
    """The reward ``name`` of the state now; a capacity reward gets what the
    trace offered over the state's window (the simulator knows the link)."""
    capacity = None
    if name in NEEDS_CAPACITY:
        end_s = sim.now_us / 1e6 + sim.config.trace_offset_s  # on the trace's clock
        capacity = sim.trace.mean_capacity_bps(max(0.0, end_s - sim.config.window_ms / 1e3),
                                               end_s)
    return REWARDS[name](sim.state(), capacity)


def as_trace(trace: Trace | str) -> Trace:
    return trace if isinstance(trace, Trace) else load_trace(trace)


class SimEnv(gym.Env[ObsArray, npt.NDArray[np.float32]]):
    """One simulated call per episode over a trace (see the module docstring)."""

    def __init__(self, traces: Sequence[Trace | str] = (), config: SimConfig | None = None,
                 reward: str | None = None, action: Mapping[str, Any] | None = None) -> None:
        self.traces = [as_trace(t) for t in traces]
        self.config = config or SimConfig(record=False)
        self.reward = reward or self.config.reward
        if self.reward not in REWARDS:
            raise ValueError(f"reward {self.reward!r}: one of {', '.join(sorted(REWARDS))}")
        # The checkpoint's action transform (OpenNetLab's log_to_linear by default).
        self.to_action = _TO_BPS if action is None else ActionTransform(action, 1)
        self.obs_size = self.config.contract.obs_size
        self.observation_space = gym.spaces.Box(0.0, np.inf, shape=(self.obs_size,),
                                                dtype=np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.sim: RtcSimulation | None = None
        self._first = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[ObsArray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        chosen = options.get("trace")
        if chosen is None:
            if not self.traces:
                raise ValueError("SimEnv has no traces: pass traces=... or options={'trace': ...}")
            trace = self.traces[int(self.np_random.integers(len(self.traces)))]
        else:
            trace = as_trace(chosen)
        sim_seed = options.get("seed")
        if sim_seed is None:
            sim_seed = int(self.np_random.integers(1 << 31))
        self.sim = RtcSimulation(trace, self.config, int(sim_seed))
        self._first = True
        return (np.zeros(self.obs_size, dtype=np.float32),
                {"trace": trace.name, "seed": int(sim_seed)})

    def step(self, action: npt.NDArray[np.float32]
             ) -> tuple[ObsArray, SupportsFloat, bool, bool, dict[str, Any]]:
        sim = self.sim
        if sim is None:
            raise RuntimeError("call reset() before step()")
        raw = np.asarray(action, dtype=np.float64).reshape(1, -1)[:, :1]
        value = float(self.to_action(raw)[0, 0])  # bit/s, or a factor with rtc-hist
        if self._first:
            sim.set_initial_estimate(value)
            self._first = False
        else:
            sim.decide(value)
        at_poll = sim.advance()
        info = {"t_s": sim.now_us / 1e6, "estimate_bps": sim.estimate_bps,
                "target_bps": sim.sender.target_bps, "fresh": sim.fresh}
        return (np.asarray(sim.observation(), dtype=np.float32), step_reward(sim, self.reward),
                False, not at_poll, info)
