"""The project's own checkpoint format: weights + model spec + observation and
action normalisation + metadata in one ``torch.save`` file.

Everything in the file is plain data (dicts, lists, numbers, strings,
tensors), so it loads with ``torch.load(..., weights_only=True)``: no code
runs when a checkpoint is opened. Layout::

    {"format": "netlab-policy", "version": 1,
     "contract": "rtc-onl4",              # what flows declare in HELLO (or rtc-hist, ...)
     "obs_size": 4, "action_size": 1,
     "model": {"type": "mlp", "actor": [128, 64, 32], "critic": [128, 64, 32],
               "activation": "relu", "output": "sigmoid"}
           | {"type": "lstm", "torso": [1024, 1024], "lstm": 1025,
              "reward_input": true, "activation": "relu", "output": "identity"},
     "observation": {"type": "identity"} | {"type": "affine", "mean": [...], "scale": [...]}
                  | {"type": "opennetlab", "low": 0.01, "high": 8, "unit": 1e6},
                    (per state of 4: obs_size 4 × N is a history of N states)
     "action": {"type": "identity"} | {"type": "linear", "low": [...], "high": [...]}
             | {"type": "log", "low": 0.01, "high": 8, "unit": 1e6}
             | {"type": "discrete", "values": [...]},
     "std": 0.05,                         # Gaussian exploration (continuous actions)
     "state_dict": {...}, "metadata": {...}}

The ``mlp`` layout is OpenNetLab's actor-critic (``actor.{0,2,4,6}``,
``critic.{0,2,4,6}``), so their state_dict drops in unchanged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from netlab.agent.policies import budget
from netlab.agent.policies.base import (
    FloatArray,
    ForwardOutput,
    PolicyInfo,
    PolicyOutput,
    RecurrentState,
    SingleDecision,
    TorchPolicy,
    parameter_count,
    stack_states,
)
from netlab.agent.policies.numpy_mlp import NumpyActorCritic

FORMAT = "netlab-policy"
VERSION = 1
#: Batches up to this many rows are normalised and mapped to actions in Python
#: scalars, larger ones in numpy (the same float64 arithmetic either way).
SMALL_ROWS = 8
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}
_OUTPUTS: dict[str, type[nn.Module] | None] = {"identity": None, "sigmoid": nn.Sigmoid,
                                               "tanh": nn.Tanh}


class SpecError(ValueError):
    """A spec that does not describe a model this module can build (says which field)."""


def _field(spec: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = spec.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise SpecError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, "
                        f"got {value!r}")
    return value


def _mlp(sizes: list[int], activation: str, output: str | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    out = _OUTPUTS.get(output or "identity")
    if out is not None:
        layers.append(out())
    return nn.Sequential(*layers)


class MlpActorCritic(nn.Module):
    """Separate actor and critic MLPs (OpenNetLab's layout)."""

    def __init__(self, obs_size: int, action_size: int, model: Mapping[str, Any]) -> None:
        super().__init__()
        activation = str(model.get("activation", "relu"))
        if activation not in _ACTIVATIONS:
            raise SpecError(f"model.activation: one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        output = str(model.get("output", "identity"))
        if output not in _OUTPUTS:
            raise SpecError(f"model.output: one of {sorted(_OUTPUTS)}, got {output!r}")
        actor = [int(n) for n in _field(model, "actor", list, "model")]
        critic = model.get("critic")
        self.actor = _mlp([obs_size, *actor, action_size], activation, output)
        self.critic = (_mlp([obs_size, *[int(n) for n in critic], 1], activation, None)
                       if isinstance(critic, list) else None)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.actor(obs), None if self.critic is None else self.critic(obs)


class LstmActorCritic(nn.Module):
    """Torso MLP → LSTMCell (with the last reward as an extra input, as mvfst-rl's
    IMPALA model does) → policy and baseline heads."""

    def __init__(self, obs_size: int, action_size: int, model: Mapping[str, Any]) -> None:
        super().__init__()
        activation = str(model.get("activation", "relu"))
        torso = [int(n) for n in _field(model, "torso", list, "model")]
        self.hidden = int(_field(model, "lstm", int, "model"))
        self.reward_input = bool(model.get("reward_input", True))
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip([obs_size, *torso[:-1]], torso, strict=True):
            layers += [nn.Linear(fan_in, fan_out), _ACTIVATIONS[activation]()]
        self.torso = nn.Sequential(*layers)
        self.core = nn.LSTMCell(torso[-1] + (1 if self.reward_input else 0), self.hidden)
        self.policy = nn.Linear(self.hidden, action_size)
        self.baseline = nn.Linear(self.hidden, 1)
        out = _OUTPUTS.get(str(model.get("output", "identity")))
        self.output = out() if out is not None else nn.Identity()

    def forward(self, obs: torch.Tensor, reward: torch.Tensor, h: torch.Tensor,
                c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.torso(obs)
        if self.reward_input:
            x = torch.cat([x, reward], dim=1)
        h, c = self.core(x, (h, c))
        return self.output(self.policy(h)), self.baseline(h), h, c


# ---- observation and action transforms (float64, as OpenNetLab's numpy code) ----------


def _log_norm(x: np.ndarray[Any, Any], low: float, high: float, unit: float) -> Any:
    """OpenNetLab's ``liner_to_log``: bps → [0, 1] on a log scale (rtc_env.py)."""
    clipped = np.clip(x / unit, low, high)
    return (np.log(clipped) - math.log(low)) / (math.log(high) - math.log(low))


class ObservationTransform:
    def __init__(self, spec: Mapping[str, Any], obs_size: int) -> None:
        self.spec = dict(spec)
        self.kind = str(spec.get("type", "identity"))
        if self.kind == "affine":
            self.mean = np.asarray(spec["mean"], dtype=np.float64)
            self.scale = np.asarray(spec["scale"], dtype=np.float64)
            if self.mean.shape != (obs_size,) or self.scale.shape != (obs_size,):
                raise SpecError(f"observation.mean/scale: {obs_size} values each")
        elif self.kind == "opennetlab":
            if obs_size % 4 or obs_size == 0:
                raise SpecError("observation.type opennetlab needs obs_size 4 (or 4 × N "
                                "for a history of N states)")
            self.states = obs_size // 4
            self.low, self.high = float(spec.get("low", 0.01)), float(spec.get("high", 8.0))
            self.unit = float(spec.get("unit", 1e6))
        elif self.kind != "identity":
            raise SpecError(f"observation.type: identity, affine or opennetlab, got {self.kind!r}")
        #: one raw observation in Python floats → normalised, for a single decision
        self.one: Callable[[Sequence[float]], list[float]] = self._one()

    def _one(self) -> Callable[[Sequence[float]], list[float]]:
        """:meth:`numpy` for one row of Python floats (float64, as there)."""
        if self.kind == "opennetlab":
            if self.states == 1:
                return self._onl_row
            return lambda row: [x for i in range(0, len(row), 4)
                                for x in self._onl_row(row[i:i + 4])]
        if self.kind == "affine":
            means, scales = self.mean.tolist(), self.scale.tolist()
            return lambda row: [(v - m) / s for v, m, s in zip(row, means, scales, strict=True)]
        return list

    def __call__(self, raw: FloatArray) -> torch.Tensor:
        return torch.from_numpy(self.numpy(raw))

    def numpy(self, raw: FloatArray) -> FloatArray:
        if self.kind == "identity":
            return np.ascontiguousarray(raw, dtype=np.float32)
        if self.kind == "opennetlab" and len(raw) <= SMALL_ROWS:
            if self.states == 1:
                return np.array([self._onl_row(row) for row in raw.tolist()],
                                dtype=np.float32)
            return np.array([[x for i in range(0, len(row), 4)
                              for x in self._onl_row(row[i:i + 4])] for row in raw.tolist()],
                            dtype=np.float32)
        x = raw.astype(np.float64)
        if self.kind == "opennetlab":  # a history: every state normalised alike
            x = x.reshape(-1, 4)
        if self.kind == "affine":
            out = (x - self.mean) / self.scale
        else:
            # OpenNetLab rtc_env.py / BandwidthEstimator.py: [liner_to_log(rate),
            # min(delay_ms / 1000, 1), loss ratio, liner_to_log(last prediction)].
            out = np.empty_like(x)
            out[:, 0] = _log_norm(x[:, 0], self.low, self.high, self.unit)
            out[:, 1] = np.minimum(x[:, 1] / 1000, 1)
            out[:, 2] = x[:, 2]
            out[:, 3] = _log_norm(x[:, 3], self.low, self.high, self.unit)
            out = out.reshape(len(raw), -1)
        return out.astype(np.float32)

    def _onl_row(self, row: Sequence[float]) -> list[float]:
        """One row of the ``opennetlab`` transform in float64 scalars: a handful of
        rows costs a dozen numpy calls otherwise, each more than the arithmetic."""
        low, high, unit = self.low, self.high, self.unit
        log_low, span = math.log(low), math.log(high) - math.log(low)
        rate, delay, loss, last = row
        return [(math.log(min(max(rate / unit, low), high)) - log_low) / span,
                min(delay / 1000, 1.0), loss,
                (math.log(min(max(last / unit, low), high)) - log_low) / span]

    def describe(self) -> str:
        if self.kind == "opennetlab":
            history = (f"the last {self.states} states, newest first, each as " if
                       self.states > 1 else "")
            return (f"{history}OpenNetLab state over the receiver's window (60 ms in their gym) "
                    "from raw "
                    "[receive_rate_bps, mean_queuing_delay_ms, loss_ratio, last_estimate_bps]: "
                    "log-normalised rates "
                    f"({self.low}–{self.high} × {self.unit:g}), min(delay/1000, 1), loss")
        if self.kind == "affine":
            return "affine: (x - mean) / scale"
        return "identity (the model sees the raw vector)"


class ActionTransform:
    def __init__(self, spec: Mapping[str, Any], action_size: int) -> None:
        self.spec = dict(spec)
        self.kind = str(spec.get("type", "identity"))
        self.discrete = self.kind == "discrete"
        if self.kind == "log":
            self.low, self.high = float(spec["low"]), float(spec["high"])
            self.unit = float(spec.get("unit", 1.0))
        elif self.kind == "linear":
            self.lows = np.asarray(spec["low"], dtype=np.float64)
            self.highs = np.asarray(spec["high"], dtype=np.float64)
        elif self.kind == "discrete":
            self.values = np.asarray(spec.get("values", list(range(action_size))),
                                     dtype=np.float64)
            if self.values.shape != (action_size,):
                raise SpecError(f"action.values: {action_size} values, one per output")
        elif self.kind != "identity":
            raise SpecError(f"action.type: identity, linear, log or discrete, got {self.kind!r}")
        #: one row of Python floats → actions, for a single deterministic decision
        self.one: Callable[[list[float]], list[float]] | None = self._one()

    @property
    def out_size(self) -> int:
        return 1 if self.discrete else -1

    def _one(self) -> Callable[[list[float]], list[float]] | None:
        """``__call__`` for one row of Python floats (None for ``discrete``)."""
        if self.kind == "log":
            low, unit = math.log(self.low), self.unit
            span = math.log(self.high) - low
            return lambda row: [math.exp(min(max(v, 0.0), 1.0) * span + low) * unit
                                for v in row]
        if self.kind == "linear":
            lows, highs = self.lows.tolist(), self.highs.tolist()
            return lambda row: [lo + min(max(v, 0.0), 1.0) * (hi - lo)
                                for v, lo, hi in zip(row, lows, highs, strict=True)]
        if self.kind == "identity":
            return list
        return None

    def __call__(self, y: np.ndarray[Any, Any]) -> FloatArray:
        if self.kind == "log" and len(y) <= SMALL_ROWS:
            log_low, span = math.log(self.low), math.log(self.high) - math.log(self.low)
            return np.array([[math.exp(min(max(v, 0.0), 1.0) * span + log_low) * self.unit
                              for v in row] for row in y.tolist()], dtype=np.float32)
        if self.kind == "log":
            # OpenNetLab's log_to_linear: [0, 1] → 10 kbps..8 Mbps on a log scale.
            v = np.clip(y.astype(np.float64), 0, 1)
            log_value = v * (math.log(self.high) - math.log(self.low)) + math.log(self.low)
            result: FloatArray = (np.exp(log_value) * self.unit).astype(np.float32)
            return result
        if self.kind == "linear":
            v = np.clip(y.astype(np.float64), 0, 1)
            result = (self.lows + v * (self.highs - self.lows)).astype(np.float32)
            return result
        if self.kind == "discrete":
            result = self.values[y.astype(np.int64)].reshape(-1, 1).astype(np.float32)
            return result
        return y.astype(np.float32)

    def describe(self) -> str:
        if self.kind == "log":
            return (f"sigmoid output in [0, 1] → log scale {self.low}–{self.high} × "
                    f"{self.unit:g} (OpenNetLab log_to_linear)")
        if self.kind == "linear":
            return "output clipped to [0, 1] → [low, high] linearly"
        if self.kind == "discrete":
            return f"argmax over {len(self.values)} logits → one of {self.values.tolist()}"
        return "identity"


class SpecPolicy(TorchPolicy):
    """A policy built from the own format (or OpenNetLab's state_dict mapped onto it)."""

    def __init__(self, checkpoint: Mapping[str, Any], *, format_name: str = "netlab") -> None:
        obs_size = int(_field(checkpoint, "obs_size", int, "checkpoint"))
        action_size = int(_field(checkpoint, "action_size", int, "checkpoint"))
        model_spec = _field(checkpoint, "model", dict, "checkpoint")
        kind = model_spec.get("type")
        state_dict = checkpoint.get("state_dict")
        if not isinstance(state_dict, Mapping):
            raise SpecError("checkpoint.state_dict: missing (the weights)")
        try:  # before the model is built: its widths are what gets allocated
            budget.check_state_dict(
                state_dict, budget.expected_shapes(obs_size, action_size, model_spec))
        except budget.BudgetError as exc:
            raise SpecError(str(exc)) from exc
        self.model: nn.Module
        if kind == "mlp":
            self.model = MlpActorCritic(obs_size, action_size, model_spec)
        elif kind == "lstm":
            self.model = LstmActorCritic(obs_size, action_size, model_spec)
        else:
            raise SpecError(f"model.type: mlp or lstm, got {kind!r}")
        try:
            self.model.load_state_dict(dict(state_dict))
        except RuntimeError as exc:
            raise SpecError(f"state_dict does not fit the model spec: {exc}") from exc
        self.model.eval()
        self.recurrent = kind == "lstm"
        self.observe = ObservationTransform(checkpoint.get("observation") or {}, obs_size)
        self.to_action = ActionTransform(checkpoint.get("action") or {}, action_size)
        self.std = float(checkpoint.get("std", 0.05))
        self.spec = {k: v for k, v in checkpoint.items() if k != "state_dict"}
        self.info = PolicyInfo(
            format=format_name, contract=str(checkpoint.get("contract", "generic")),
            obs_size=obs_size,
            action_size=1 if self.to_action.discrete else action_size,
            recurrent=self.recurrent, parameters=parameter_count(self.model),
            observation=self.observe.describe(), action=self.to_action.describe(),
            metadata=dict(checkpoint.get("metadata") or {}))
        self._initial: RecurrentState | None = None
        self.numpy_forward: NumpyActorCritic | None = None
        if isinstance(self.model, MlpActorCritic):
            self.numpy_forward = NumpyActorCritic(self.model.actor, self.model.critic)
        self._mean_log_prob = _mean_log_prob(action_size, self.std)
        if self.numpy_forward is not None and self.to_action.one is not None:
            self.single = self._single
        self.hidden = None
        if isinstance(self.model, LstmActorCritic):
            self.hidden = self.model.hidden
            zeros = torch.zeros(self.model.hidden)
            self._initial = (zeros, zeros)

    def initial_state(self) -> RecurrentState | None:
        return self._initial

    def torch_modules(self) -> list[nn.Module]:
        return [self.model]

    def forward(self, obs: torch.Tensor, reward: torch.Tensor, h: torch.Tensor | None,
                c: torch.Tensor | None) -> ForwardOutput:
        if isinstance(self.model, LstmActorCritic):
            assert h is not None and c is not None
            out, value, h, c = self.model(obs, reward, h, c)
            return out, value, h, c
        out, value = self.model(obs)
        return out, value, None, None

    def act(self, observations: FloatArray, states: list[RecurrentState | None],
            explore: bool, rewards: FloatArray | None = None) -> PolicyOutput:
        new_states: list[RecurrentState | None] = [None] * len(states)
        if len(observations) == 1 and not explore and self.single is not None:
            actions, log_prob, one_value = self.single(observations[0].tolist())
            return PolicyOutput(np.array([actions], dtype=np.float32),
                                np.array([log_prob], dtype=np.float32),
                                np.array([one_value], dtype=np.float32), new_states)
        if self.numpy_forward is not None:  # small MLPs: numpy (policies.numpy_mlp)
            x = self.observe.numpy(observations)
            out, value = self.numpy_forward(x)
            return finish_actions(out, value, explore, self.std, self.to_action, new_states)
        with torch.inference_mode():
            obs_t = self.observe(observations)
            assert self._initial is not None
            h0, c0 = stack_states(states, self._initial)
            reward = (torch.zeros(len(states), 1) if rewards is None
                      else torch.from_numpy(rewards.reshape(-1, 1)))
            out_t, value_t, h, c = self.forward(obs_t, reward, h0, c0)
            assert h is not None and c is not None
            new_states = [(h[i], c[i]) for i in range(len(states))]
            return finish_actions(out_t.numpy(),
                                  None if value_t is None else value_t.numpy(), explore,
                                  self.std, self.to_action, new_states)

    def _single(self, raw: Sequence[float]) -> SingleDecision:
        """One flow's deterministic decision from its raw observation, in Python floats
        from end to end (normalise, :meth:`NumpyActorCritic.one`, map to actions):
        what :func:`finish_actions` gives for a batch of one."""
        assert self.numpy_forward is not None and self.to_action.one is not None
        outs, value = self.numpy_forward.one(self.observe.one(raw))
        return (self.to_action.one(outs), self._mean_log_prob,
                math.nan if value is None else value)


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_rng = np.random.default_rng()


def _mean_log_prob(size: int, std: float) -> float:
    """log N(mean; mean, diag(std²)) over ``size`` actions: z = 0 in every one."""
    return -size * (math.log(std) + _LOG_SQRT_2PI)


def finish_actions(out: np.ndarray[Any, Any], value: np.ndarray[Any, Any] | None,
                   explore: bool, std: float, to_action: ActionTransform,
                   states: list[RecurrentState | None]) -> PolicyOutput:
    """Raw outputs → actions, log-probabilities and values.

    Continuous: OpenNetLab's actor_critic.py takes MultivariateNormal(mean,
    diag(std²)); the deterministic action is the mean, and its log-prob is
    reported as theirs is. Discrete: softmax over logits, argmax or a sample."""
    out = np.asarray(out, dtype=np.float64)
    if to_action.discrete:
        shifted = out - out.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        if explore:
            chosen = np.array([_rng.choice(row.size, p=np.exp(row)) for row in log_p])
        else:
            chosen = out.argmax(axis=1)
        log_prob = log_p[np.arange(len(chosen)), chosen]
        raw: np.ndarray[Any, Any] = chosen
    elif explore:
        raw = out + _rng.normal(0.0, std, size=out.shape)
        z = (raw - out) / std
        log_prob = (-0.5 * z * z - math.log(std) - _LOG_SQRT_2PI).sum(axis=1)
    else:  # the mean: z = 0, the same log-probability for every row
        raw = out
        log_prob = np.full(out.shape[0], _mean_log_prob(out.shape[1], std))
    values = (np.asarray(value, dtype=np.float32).reshape(-1) if value is not None
              else np.full(out.shape[0], np.nan, dtype=np.float32))
    return PolicyOutput(to_action(raw), log_prob.astype(np.float32), values, states)


def make_checkpoint(model: nn.Module, *, contract: str, obs_size: int, action_size: int,
                    model_spec: dict[str, Any], observation: dict[str, Any] | None = None,
                    action: dict[str, Any] | None = None, std: float = 0.05,
                    metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The own-format dict for ``torch.save`` (what ``SpecPolicy`` reads back)."""
    return {"format": FORMAT, "version": VERSION, "contract": contract, "obs_size": obs_size,
            "action_size": action_size, "model": model_spec,
            "observation": observation or {"type": "identity"},
            "action": action or {"type": "identity"}, "std": std,
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "metadata": metadata or {}}
