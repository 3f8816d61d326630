"""What every served policy looks like to the agent: a batched ``act``.

The agent batches all waiting requests of one policy into one forward pass
(docs/design.md, "Decision serving": 1.4–2× the throughput of one pass per
request), so policies take a ``[B, obs]`` array and per-flow recurrent
states, and give back ``[B, action]`` actions in physical units, their
log-probabilities and value estimates (what a PPO learner needs).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

if TYPE_CHECKING:
    from netlab.agent.policies.spec import ActionTransform, ObservationTransform

RecurrentState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [hidden]
FloatArray = npt.NDArray[np.float32]
#: (actions in physical units, log-probability, value or NaN) of one deterministic
#: decision, in Python floats
SingleDecision = tuple[list[float], float, float]


@dataclass
class PolicyOutput:
    actions: FloatArray  # [B, action_size], physical units
    log_prob: FloatArray  # [B]
    value: FloatArray  # [B]; NaN where the policy has no critic
    states: list[RecurrentState | None]


@dataclass
class PolicyInfo:
    """What ``netlab agent inspect`` prints and HELLO is checked against."""

    format: str  # "netlab", "opennetlab-ppo", "torchscript"
    contract: str  # observation/action contract name a flow declares in HELLO
    obs_size: int
    action_size: int
    recurrent: bool
    parameters: int
    observation: str  # how the observation is read and normalised
    action: str  # how the output becomes an action
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The decision step the policy was trained with (ms), from the checkpoint's
    #: ``metadata.step_ms``, and the observation window if it differs from the step
    #: (``metadata.window_ms``); None where the checkpoint does not say.
    step_ms: float | None = None
    window_ms: float | None = None

    def __post_init__(self) -> None:
        if self.step_ms is None:
            self.step_ms = milliseconds(self.metadata, "step_ms")
        if self.window_ms is None:
            self.window_ms = milliseconds(self.metadata, "window_ms")


def milliseconds(metadata: dict[str, Any], key: str) -> float | None:
    """``metadata[key]`` if it is a positive, finite number."""
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value < math.inf else None


class Policy(ABC):
    info: PolicyInfo
    #: One flow's deterministic decision from its raw observation floats, past numpy
    #: and torch where the policy can (a small stateless MLP): the agent answers a
    #: lone request through it as soon as it is read (:mod:`netlab.agent.lane`).
    #: None: every decision goes through :meth:`act`.
    single: Callable[[Sequence[float]], SingleDecision] | None = None

    @abstractmethod
    def act(self, observations: FloatArray, states: list[RecurrentState | None],
            explore: bool, rewards: FloatArray | None = None) -> PolicyOutput:
        """One forward pass for a batch of flows (runs under ``torch.inference_mode``);
        ``rewards`` (``[B]``) feed recurrent models that take the last reward."""

    def initial_state(self) -> RecurrentState | None:
        return None

    def warm(self) -> None:
        """Touch the weights (one pass on zeros) so caches stay hot between rare decisions."""
        zeros = np.zeros((1, self.info.obs_size), dtype=np.float32)
        self.act(zeros, [self.initial_state()], explore=False)

    def compatible_with(self, other: Policy) -> str | None:
        """Why ``other`` cannot replace this policy under live flows (None: it can)."""
        a, b = self.info, other.info
        if (a.contract, a.obs_size, a.action_size) != (b.contract, b.obs_size, b.action_size):
            return (f"new policy serves {b.contract} {b.obs_size}→{b.action_size}, flows "
                    f"expect {a.contract} {a.obs_size}→{a.action_size}")
        return None


#: (raw outputs [B, A], value [B, 1] or None, new h [B, H] or None, new c or None)
ForwardOutput = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


class TorchPolicy(Policy):
    """A policy whose forward pass is one torch call between numpy pre- and
    post-processing, so it can be placed on another device
    (:mod:`netlab.agent.device`) without knowing its model."""

    observe: ObservationTransform
    to_action: ActionTransform
    std: float
    hidden: int | None  # recurrent state width; None for stateless policies

    @abstractmethod
    def forward(self, obs: torch.Tensor, reward: torch.Tensor, h: torch.Tensor | None,
                c: torch.Tensor | None) -> ForwardOutput:
        """The model on normalised observations ``[B, N]``, rewards ``[B, 1]`` and,
        when recurrent, states ``[B, H]``."""

    def torch_modules(self) -> list[torch.nn.Module]:
        """What must move to another device with the forward pass."""
        return []


def stack_states(states: list[RecurrentState | None], initial: RecurrentState
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    hs = [s[0] if s is not None else initial[0] for s in states]
    cs = [s[1] if s is not None else initial[1] for s in states]
    return torch.stack(hs), torch.stack(cs)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
