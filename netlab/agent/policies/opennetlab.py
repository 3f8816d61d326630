"""OpenNetLab's PPO bandwidth estimator (gym-example) as a served policy.

Their checkpoint is the ``state_dict`` of ``deep_rl/actor_critic.py``'s
``ActorCritic(state_dim=4, action_dim=1, exploration_param=0.05)``: actor
Linear 4→128→64→32→1 with ReLU between and a Sigmoid at the end, critic the
same without the Sigmoid. Their ``BandwidthEstimator.py`` builds the state
every call from the packets of the last 60 ms (``step_time=60``) with
``PacketRecord`` and maps the action back with ``log_to_linear`` (10 kbps to
8 Mbps on a log scale); the state is computed at the endpoint
(:mod:`endpoints.agent_rtc`) in raw units and normalised here exactly as
their ``liner_to_log`` does. The action is the actor's mean (their
``random_action = False``); exploring samples with their std 0.05.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from netlab.agent.policies.spec import FORMAT, VERSION, MlpActorCritic

CONTRACT = "rtc-onl4"
OBS_SIZE, ACTION_SIZE = 4, 1
HIDDEN = [128, 64, 32]
EXPLORATION_STD = 0.05
MIN_MBPS, MAX_MBPS, UNIT_BPS = 0.01, 8.0, 1e6
MODEL_SPEC: dict[str, Any] = {"type": "mlp", "actor": HIDDEN, "critic": HIDDEN,
                              "activation": "relu", "output": "sigmoid"}
OBSERVATION: dict[str, Any] = {"type": "opennetlab", "low": MIN_MBPS, "high": MAX_MBPS,
                               "unit": UNIT_BPS}
ACTION: dict[str, Any] = {"type": "log", "low": MIN_MBPS, "high": MAX_MBPS, "unit": UNIT_BPS}
EXPECTED_SHAPES = {
    "actor.0.weight": (128, 4), "actor.0.bias": (128,), "actor.2.weight": (64, 128),
    "actor.2.bias": (64,), "actor.4.weight": (32, 64), "actor.4.bias": (32,),
    "actor.6.weight": (1, 32), "actor.6.bias": (1,),
    "critic.0.weight": (128, 4), "critic.0.bias": (128,), "critic.2.weight": (64, 128),
    "critic.2.bias": (64,), "critic.4.weight": (32, 64), "critic.4.bias": (32,),
    "critic.6.weight": (1, 32), "critic.6.bias": (1,),
}


def looks_like_opennetlab(state: Mapping[str, Any]) -> bool:
    return set(state) == set(EXPECTED_SHAPES) and all(
        isinstance(state[k], torch.Tensor) and tuple(state[k].shape) == shape
        for k, shape in EXPECTED_SHAPES.items())


def shape_mismatches(state: Mapping[str, Any]) -> list[str]:
    """What differs from the gym-example layout (for an error message)."""
    problems = [f"missing {k}" for k in EXPECTED_SHAPES if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in EXPECTED_SHAPES]
    for key, shape in EXPECTED_SHAPES.items():
        value = state.get(key)
        if isinstance(value, torch.Tensor) and tuple(value.shape) != shape:
            problems.append(f"{key} has shape {tuple(value.shape)}, expected {shape}")
    return problems


def as_checkpoint(state: Mapping[str, Any], *, source: str = "") -> dict[str, Any]:
    """Their state_dict as an own-format checkpoint dict (same weights, same maths)."""
    return {"format": FORMAT, "version": VERSION, "contract": CONTRACT, "obs_size": OBS_SIZE,
            "action_size": ACTION_SIZE, "model": MODEL_SPEC, "observation": OBSERVATION,
            "action": ACTION, "std": EXPLORATION_STD, "state_dict": dict(state),
            "metadata": {"origin": "OpenNetLab gym-example PPO (deep_rl/actor_critic.py)",
                         "source": source, "step_ms": 60}}


def initial_checkpoint(seed: int = 0) -> dict[str, Any]:
    """A freshly initialised policy of OpenNetLab's shape: the start of fine-tuning."""
    torch.manual_seed(seed)
    model = MlpActorCritic(OBS_SIZE, ACTION_SIZE, MODEL_SPEC)
    checkpoint = as_checkpoint({k: v.detach().clone() for k, v in model.state_dict().items()})
    checkpoint["metadata"] = {"origin": f"initial policy (seed {seed})", "step_ms": 60}
    return checkpoint
