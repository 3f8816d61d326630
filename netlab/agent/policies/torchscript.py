"""TorchScript modules as policies, stateless or recurrent (mvfst-rl style).

Conventions (what ``netlab agent inspect`` checks and prints):

* stateless: ``forward(obs[B, N]) -> out[B, A]`` or ``(out, value[B, 1])``;
* recurrent: ``forward(obs[B, N], h[B, H], c[B, H]) -> (out, h, c)`` or
  ``(out, value, h, c)``; the agent keeps ``(h, c)`` per flow, starting
  from zeros, as mvfst-rl's actors keep their LSTM state per connection;
* an optional extra file ``netlab.json`` (``torch.jit.save(m, path,
  _extra_files={"netlab.json": ...})``) holds ``contract``, ``obs_size``,
  ``hidden_size``, ``observation`` and ``action`` transforms as in the own
  format (:mod:`netlab.agent.policies.spec`), ``std`` and ``metadata``.
  Without it the observation size is read from the first layer's weight and
  the hidden size from a ``hidden_size`` attribute.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from netlab.agent.policies.base import (
    FloatArray,
    ForwardOutput,
    PolicyInfo,
    PolicyOutput,
    RecurrentState,
    TorchPolicy,
    stack_states,
)
from netlab.agent.policies.spec import (
    ActionTransform,
    ObservationTransform,
    SpecError,
    finish_actions,
)

EXTRA_FILE = "netlab.json"
_NO_REWARD = torch.zeros(1, 1)


def _forward_arity(module: torch.jit.ScriptModule) -> int:
    schema = module.forward.schema  # type: ignore[attr-defined]
    return len(schema.arguments) - 1  # minus self


def _first_in_features(module: torch.jit.ScriptModule) -> int | None:
    for _, tensor in module.named_parameters():
        if tensor.dim() == 2:
            return int(tensor.shape[1])
    return None


class TorchScriptPolicy(TorchPolicy):
    def __init__(self, path: Path) -> None:
        extra = {EXTRA_FILE: ""}
        self.module = torch.jit.load(  # type: ignore[no-untyped-call]
            str(path), map_location="cpu", _extra_files=extra)
        self.module.eval()
        meta: dict[str, Any] = json.loads(extra[EXTRA_FILE]) if extra[EXTRA_FILE] else {}
        arity = _forward_arity(self.module)
        if arity not in (1, 3):
            raise SpecError(f"forward takes {arity} inputs; expected forward(obs) or "
                            "forward(obs, h, c)")
        self.recurrent = arity == 3
        obs_size = meta.get("obs_size") or _first_in_features(self.module)
        if not isinstance(obs_size, int):
            raise SpecError("cannot tell the observation size: no 2-D weight; add "
                            "netlab.json with obs_size")
        self.hidden: int | None = None
        if self.recurrent:
            hidden = meta.get("hidden_size", getattr(self.module, "hidden_size", None))
            if not isinstance(hidden, int):
                raise SpecError("recurrent module without hidden_size (attribute or "
                                "netlab.json)")
            self.hidden = hidden
        zeros = torch.zeros(self.hidden or 0)
        self._initial: RecurrentState | None = (zeros, zeros) if self.recurrent else None
        self.observe = ObservationTransform(meta.get("observation") or {}, obs_size)
        with torch.inference_mode():
            out, _, _ = self._run(torch.zeros(1, obs_size), [self._initial])
        raw_size = int(out.shape[1])
        self.to_action = ActionTransform(meta.get("action") or {}, raw_size)
        self.std = float(meta.get("std", 0.05))
        self.info = PolicyInfo(
            format="torchscript", contract=str(meta.get("contract", "generic")),
            obs_size=obs_size, action_size=1 if self.to_action.discrete else raw_size,
            recurrent=self.recurrent,
            parameters=sum(p.numel() for p in self.module.parameters()),
            observation=self.observe.describe(), action=self.to_action.describe(),
            metadata=dict(meta.get("metadata") or {}, hidden_size=self.hidden))

    def initial_state(self) -> RecurrentState | None:
        return self._initial

    def torch_modules(self) -> list[torch.nn.Module]:
        return [self.module]

    def forward(self, obs: torch.Tensor, reward: torch.Tensor, h: torch.Tensor | None,
                c: torch.Tensor | None) -> ForwardOutput:
        if not self.recurrent:
            result = self.module(obs)
            if isinstance(result, tuple):
                return result[0], result[1] if len(result) > 1 else None, None, None
            return result, None, None, None
        result = self.module(obs, h, c)
        if not isinstance(result, tuple) or len(result) not in (3, 4):
            raise SpecError("a recurrent module must return (out, h, c) or (out, value, h, c)")
        return result[0], (result[1] if len(result) == 4 else None), result[-2], result[-1]

    def _run(self, obs: torch.Tensor, states: list[RecurrentState | None]
             ) -> tuple[torch.Tensor, torch.Tensor | None, list[RecurrentState | None]]:
        h = c = None
        if self.recurrent:
            assert self._initial is not None
            h, c = stack_states(states, self._initial)
        out, value, h, c = self.forward(obs, _NO_REWARD, h, c)  # the module takes none
        if h is None or c is None:
            return out, value, [None] * len(states)
        return out, value, [(h[i], c[i]) for i in range(len(states))]

    def act(self, observations: FloatArray, states: list[RecurrentState | None],
            explore: bool, rewards: FloatArray | None = None) -> PolicyOutput:
        with torch.inference_mode():
            out, value, new_states = self._run(self.observe(observations), states)
            return finish_actions(out.numpy(), None if value is None else value.numpy(),
                                  explore, self.std, self.to_action, new_states)
