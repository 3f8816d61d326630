"""What a checkpoint may ask for, checked before anything is allocated.

A checkpoint declares its layer widths; building the model allocates them, so
a 2 kB file declaring ``actor: [1000000000]`` asked for 16 GB.  The spec's
shapes are computed here first and held to a budget, and the state_dict must
match them tensor by tensor (floating point, finite) before the model is built.
An agent answers within a millisecond, so a policy near these limits is
useless anyway: OpenNetLab's pretrained PPO has ~20 000 parameters.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any, Final

import torch

MAX_WIDTH: Final = 16_384
MAX_PARAMETERS: Final = 50_000_000
MAX_CHECKPOINT_BYTES: Final = 256 << 20
_FLOATS: Final = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

Shapes = dict[str, tuple[int, ...]]


class BudgetError(ValueError):
    """A spec or state_dict outside the budget (says which field)."""


def width(value: object, where: str) -> int:
    """A layer width or vector size: a whole number in [1, MAX_WIDTH]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BudgetError(f"{where}: expected a whole number, got {value!r}")
    if not 1 <= value <= MAX_WIDTH:
        raise BudgetError(f"{where}: {value} is outside 1..{MAX_WIDTH}")
    return value


def widths(value: object, where: str) -> list[int]:
    if not isinstance(value, list) or len(value) > 64:
        raise BudgetError(f"{where}: expected a list of at most 64 widths, got {value!r:.80}")
    return [width(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _linear(prefix: str, fan_in: int, fan_out: int) -> Shapes:
    return {f"{prefix}.weight": (fan_out, fan_in), f"{prefix}.bias": (fan_out,)}


def _mlp(prefix: str, sizes: list[int]) -> Shapes:
    shapes: Shapes = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        shapes |= _linear(f"{prefix}.{2 * i}", fan_in, fan_out)
    return shapes


def expected_shapes(obs_size: object, action_size: object, model: Mapping[str, Any]) -> Shapes:
    """The state_dict shapes the spec's model has, without building it; the
    total is held to MAX_PARAMETERS."""
    obs = width(obs_size, "checkpoint.obs_size")
    actions = width(action_size, "checkpoint.action_size")
    kind = model.get("type")
    shapes: Shapes
    if kind == "mlp":
        shapes = _mlp("actor", [obs, *widths(model.get("actor"), "model.actor"), actions])
        if model.get("critic") is not None:
            shapes |= _mlp("critic", [obs, *widths(model.get("critic"), "model.critic"), 1])
    elif kind == "lstm":
        torso = widths(model.get("torso"), "model.torso")
        if not torso:
            raise BudgetError("model.torso: at least one layer")
        hidden = width(model.get("lstm"), "model.lstm")
        shapes = _mlp("torso", [obs, *torso])
        core_in = torso[-1] + (1 if bool(model.get("reward_input", True)) else 0)
        shapes |= {"core.weight_ih": (4 * hidden, core_in), "core.weight_hh": (4 * hidden, hidden),
                   "core.bias_ih": (4 * hidden,), "core.bias_hh": (4 * hidden,)}
        shapes |= _linear("policy", hidden, actions) | _linear("baseline", hidden, 1)
    else:
        raise BudgetError(f"model.type: mlp or lstm, got {kind!r}")
    total = sum(math.prod(shape) for shape in shapes.values())
    if total > MAX_PARAMETERS:
        raise BudgetError(f"model: {total:,} parameters, over the {MAX_PARAMETERS:,} an agent "
                          "serves (check the declared widths)")
    return shapes


def check_state_dict(state_dict: Mapping[Any, Any], shapes: Shapes) -> None:
    """Every expected tensor present, floating point, of its shape and finite."""
    extra = sorted(str(k) for k in state_dict if k not in shapes)
    if extra:
        raise BudgetError(f"state_dict: unexpected keys {', '.join(extra[:4])}")
    for key, shape in shapes.items():
        tensor = state_dict.get(key)
        if not isinstance(tensor, torch.Tensor):
            raise BudgetError(f"state_dict.{key}: missing (expected a tensor of shape {shape})")
        if tensor.dtype not in _FLOATS:
            raise BudgetError(f"state_dict.{key}: dtype {tensor.dtype}, expected floating point")
        if tuple(tensor.shape) != shape:
            raise BudgetError(f"state_dict.{key}: shape {tuple(tensor.shape)}, expected {shape}")
        if not bool(torch.isfinite(tensor).all()):
            raise BudgetError(f"state_dict.{key}: holds NaN or infinite values")
