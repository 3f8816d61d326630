"""What every served policy looks like to the agent: a batched ``act``.

The agent batches all waiting requests of one policy into one forward pass
(DESIGN.md, "Decision serving": 1.4–2× the throughput of one pass per
request), so policies take a ``[B, obs]`` array and per-flow recurrent
states, and give back ``[B, action]`` actions in physical units, their
log-probabilities and value estimates (what a PPO learner needs).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

RecurrentState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [hidden]
FloatArray = npt.NDArray[np.float32]


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


class Policy(ABC):
    info: PolicyInfo

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


def stack_states(states: list[RecurrentState | None], initial: RecurrentState
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    hs = [s[0] if s is not None else initial[0] for s in states]
    cs = [s[1] if s is not None else initial[1] for s in states]
    return torch.stack(hs), torch.stack(cs)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
