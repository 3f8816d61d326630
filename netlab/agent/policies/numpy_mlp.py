"""Small actor-critic MLPs forward in numpy, actor and critic in one chain.

A forward pass through ``nn.Module`` dispatch costs far more than the matrix
products of a 22 k-parameter MLP (``bench/agent_profile.py --only forward``
measures torch eager, a frozen TorchScript module and this side by side), so
such MLPs run here. When actor and critic have the same depth and hidden
activation they run as one chain: the first layer's weights side by side, the
deeper ones block-diagonal, so each layer is one product instead of two (the
zero blocks add exact zeros; the cost of numpy calls, not of arithmetic,
dominates at these sizes). Results agree with torch's to float32 rounding
(tests/netlab/agent/test_numpy_mlp.py).

One flow's decision (the agent's usual request) runs through :class:`RowChain`
instead: buffers made once, the bias folded into each product (``[x, 1] @ [W; b]``),
the input packed straight into numpy's memory and the output read back with
``struct``: seven numpy calls and no allocation for OpenNetLab's model, where the
batched chain makes a dozen calls and four arrays. After an idle every numpy call
costs several µs (``endpoints.agent_protocol.SMALL_VECTOR``): measured here, 20 ms
between calls, p50/p90 15/27 µs against 24/53 µs (``bench/agent_profile.py``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

Array = np.ndarray[Any, Any]
#: (Wᵀ [in, out], b [out], activation after) per Linear
Layers = list[tuple[Array, Array, str]]
_NAMES: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.ELU: "elu",
                                      nn.Sigmoid: "sigmoid"}


def layers_of(sequential: nn.Sequential) -> Layers:
    """(Wᵀ, b, activation after) per Linear of a Sequential, as float32 arrays."""
    layers: Layers = []
    for module in sequential:
        if isinstance(module, nn.Linear):
            layers.append((module.weight.detach().cpu().numpy().T.astype(np.float32),
                           module.bias.detach().cpu().numpy().astype(np.float32), "identity"))
        else:
            weight, bias, _ = layers[-1]
            layers[-1] = (weight, bias, _NAMES[type(module)])
    return layers


def activate(x: Array, activation: str) -> Array:
    """``activation`` applied to ``x`` (in place where numpy allows)."""
    if activation == "relu":
        np.maximum(x, 0, out=x)
    elif activation == "tanh":
        np.tanh(x, out=x)
    elif activation == "sigmoid":
        x = 1 / (1 + np.exp(-x))
    elif activation == "elu":
        x = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    return x


def activate_one(v: float, activation: str) -> float:
    """:func:`activate` on one Python float (float64; the sigmoid without overflow)."""
    if activation == "relu":
        return v if v > 0 else 0.0
    if activation == "tanh":
        return math.tanh(v)
    if activation == "sigmoid":
        if v >= 0:
            return 1 / (1 + math.exp(-v))
        e = math.exp(v)
        return e / (1 + e)
    if activation == "elu":
        return v if v > 0 else math.expm1(v)
    return v


def run(layers: Layers, x: Array) -> Array:
    for weight, bias, activation in layers:
        x = x @ weight
        x += bias
        x = activate(x, activation)
    return x


def _block_diagonal(a: Array, b: Array) -> Array:
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]), dtype=np.float32)
    out[:a.shape[0], :a.shape[1]] = a
    out[a.shape[0]:, a.shape[1]:] = b
    return out


def fuse(actor: Layers, critic: Layers) -> Layers | None:
    """One chain computing ``[actor(x) before its output activation | critic(x)]``,
    or None when the two cannot share one (other depth or hidden activations)."""
    if len(actor) != len(critic) or critic[-1][2] != "identity":
        return None
    if any(a[2] != c[2] for a, c in zip(actor[:-1], critic[:-1], strict=True)):
        return None
    fused: Layers = []
    for k, ((wa, ba, fa), (wc, bc, _)) in enumerate(zip(actor, critic, strict=True)):
        weight = np.concatenate([wa, wc], axis=1) if k == 0 else _block_diagonal(wa, wc)
        last = k == len(actor) - 1
        fused.append((weight, np.concatenate([ba, bc]), "identity" if last else fa))
    return fused


class NumpyActorCritic:
    """``(raw actions [B, A], value [B, 1] or None)`` for normalised observations."""

    def __init__(self, actor: nn.Sequential, critic: nn.Sequential | None) -> None:
        self.actor = layers_of(actor)
        self.critic = layers_of(critic) if critic is not None else None
        self.out_size = self.actor[-1][0].shape[1]
        self.output = self.actor[-1][2]
        self.fused = fuse(self.actor, self.critic) if self.critic is not None else None
        # one row: the fused chain where there is one, else the actor's and critic's
        self._fused_row = RowChain(self.fused) if self.fused is not None else None
        unfused = self.fused is None
        self._actor_row = RowChain(self.actor) if unfused else None
        self._critic_row = RowChain(self.critic) if unfused and self.critic is not None else None

    def __call__(self, x: Array) -> tuple[Array, Array | None]:
        if self.fused is None:
            return run(self.actor, x), (run(self.critic, x) if self.critic is not None
                                        else None)
        y = run(self.fused, x)
        a = self.out_size
        return activate(y[:, :a].copy(), self.output), y[:, a:]

    def one(self, values: Sequence[float]) -> tuple[list[float], float | None]:
        """One normalised observation in Python floats: (activated outputs, value or
        None), through :class:`RowChain` (not thread-safe: the agent's serving thread
        is its only caller while it serves)."""
        a = self.out_size
        output = self.output
        if self._fused_row is None:  # the actor's own chain ends in its output activation
            assert self._actor_row is not None
            value = self._critic_row(values)[0] if self._critic_row is not None else None
            return self._actor_row(values), value
        row = self._fused_row(values)
        return [activate_one(v, output) for v in row[:a]], row[a]


class RowChain:
    """``run(layers, [values])[0]`` for one row, in buffers made once: each layer is
    ``[x, 1] @ [W; b]`` written into the next layer's input (whose last element
    stays 1), the activation applied in place; the input is packed into the first
    buffer's memory and the output unpacked from the last's, both with ``struct``."""

    def __init__(self, layers: Layers) -> None:
        self.steps: list[tuple[Array, Array, Array, str]] = []
        first_in = layers[0][0].shape[0]
        self._input = np.zeros((1, first_in + 1), dtype=np.float32)
        self._input[0, first_in] = 1.0
        self._pack = struct.Struct(f"<{first_in}f").pack_into
        self._input_memory = self._input.data.cast("B")
        previous = self._input
        for k, (weight, bias, activation) in enumerate(layers):
            last = k == len(layers) - 1
            out_size = weight.shape[1]
            augmented = np.ascontiguousarray(np.vstack([weight, bias[None, :]]),
                                             dtype=np.float32)
            buffer = np.zeros((1, out_size + (0 if last else 1)), dtype=np.float32)
            if not last:
                buffer[0, out_size] = 1.0
            self.steps.append((previous, augmented, buffer[:, :out_size], activation))
            previous = buffer
        self._unpack = struct.Struct(f"<{previous.shape[1]}f").unpack_from
        self._output_memory = previous.data.cast("B")

    def __call__(self, values: Sequence[float]) -> list[float]:
        self._pack(self._input_memory, 0, *values)
        matmul = np.matmul
        for x, weight, out, activation in self.steps:
            matmul(x, weight, out=out)
            if activation == "relu":
                np.maximum(out, 0, out=out)
            elif activation == "tanh":
                np.tanh(out, out=out)
            elif activation != "identity":
                out[...] = activate(out.copy(), activation)
        return list(self._unpack(self._output_memory))
