"""Where the forward pass runs: this CPU, or a GPU through captured CUDA graphs.

On a GPU, launching a small model's kernels one at a time costs more than
running them, and a captured graph replays them in one launch (issue #14
measured both for an mvfst-rl-sized policy; ``bench/agent_profile.py --model
mvfst-sized --device cuda`` measures them again). So each batch-size bucket
(``BUCKETS``) gets a graph captured once at start; a batch is padded with zero
rows to the next bucket, and a larger one runs in chunks of the largest. Each replay makes one
staging copy each way: observations, rewards and recurrent states in, raw
outputs, values and new states out. Where there is no GPU the agent serves on
the CPU and says why (printed, and in its stats' ``device``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from netlab.agent.policies.base import (
    FloatArray,
    Policy,
    PolicyOutput,
    RecurrentState,
    TorchPolicy,
)
from netlab.agent.policies.spec import finish_actions

BUCKETS = (1, 8, 32)
#: Passes before a capture (PyTorch's CUDA-graph notes: warm up on a side stream
#: so lazy initialisation and TorchScript's profiling runs happen outside it).
WARMUP_PASSES = 3


def bucket_for(n: int, buckets: tuple[int, ...] = BUCKETS) -> int:
    """The smallest bucket that holds ``n`` rows (the largest for more: chunked)."""
    for bucket in buckets:
        if n <= bucket:
            return bucket
    return buckets[-1]


def chunks(n: int, largest: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of at most ``largest`` rows covering ``n``."""
    return [(start, min(n, start + largest)) for start in range(0, n, largest)]


def cuda_unavailable() -> str | None:
    """Why this process cannot serve on a GPU (None: it can)."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is false (no GPU or driver visible)"
    return None


def fallback_note(asked: str, reason: str) -> str:
    return (f"device {asked} asked for, but {reason}; serving on cpu (install a CUDA build "
            "of torch on a machine with a GPU to serve there)")


@dataclass
class _Slot:
    """One bucket's buffers: host staging (pinned on a GPU) and device tensors."""

    host_in: torch.Tensor
    host_out: torch.Tensor
    device_in: torch.Tensor
    graph: torch.cuda.CUDAGraph | None
    device_out: torch.Tensor | None


class BucketedForward:
    """A :class:`TorchPolicy`'s forward pass at fixed batch sizes on ``device``.

    Columns of a staging row: the normalised observation (N), the reward (1),
    then h and c (H each) for a recurrent policy; out: raw outputs (A), the value
    (1, when the policy has a critic), the new h and c. With ``capture`` each
    bucket replays a CUDA graph; without it (the CPU, where tests run this path)
    the same buffers go through an eager pass."""

    def __init__(self, policy: TorchPolicy, device: torch.device,
                 buckets: tuple[int, ...] = BUCKETS, capture: bool = True) -> None:
        self.policy = policy
        self.device = device
        self.buckets = buckets
        self.obs_size = policy.info.obs_size
        self.hidden = policy.hidden or 0
        self.width_in = self.obs_size + 1 + 2 * self.hidden
        pin = device.type == "cuda"
        with torch.no_grad():
            probe = self._compute(torch.zeros(1, self.width_in, device=device))
            self.out_size, self.has_value = self._out_layout(probe)
        self.width_out = int(probe.shape[1])
        self.slots: dict[int, _Slot] = {}
        for bucket in buckets:
            host_in = torch.zeros(bucket, self.width_in, pin_memory=pin)
            host_out = torch.zeros(bucket, self.width_out, pin_memory=pin)
            device_in = torch.zeros(bucket, self.width_in, device=device)
            graph, device_out = self._capture(device_in) if capture else (None, None)
            self.slots[bucket] = _Slot(host_in, host_out, device_in, graph, device_out)

    def _compute(self, device_in: torch.Tensor) -> torch.Tensor:
        n, h = self.obs_size, self.hidden
        obs, reward = device_in[:, :n], device_in[:, n:n + 1]
        h0 = device_in[:, n + 1:n + 1 + h] if h else None
        c0 = device_in[:, n + 1 + h:] if h else None
        out, value, h1, c1 = self.policy.forward(obs, reward, h0, c0)
        parts = [out.reshape(out.shape[0], -1)]
        if value is not None:
            parts.append(value.reshape(-1, 1))
        if h:
            assert h1 is not None and c1 is not None
            parts += [h1, c1]
        return torch.cat(parts, dim=1).float()

    def _out_layout(self, probe: torch.Tensor) -> tuple[int, bool]:
        n, h = self.obs_size, self.hidden
        obs = torch.zeros(1, n, device=self.device)
        reward = torch.zeros(1, 1, device=self.device)
        zeros = torch.zeros(1, h, device=self.device) if h else None
        out, value, _, _ = self.policy.forward(obs, reward, zeros, zeros)
        return int(out.reshape(1, -1).shape[1]), value is not None

    def _capture(self, device_in: torch.Tensor
                 ) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad():
            with torch.cuda.stream(side):
                for _ in range(WARMUP_PASSES):
                    self._compute(device_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: a reload captures in the control thread while the
            # serving thread keeps replaying the old policy's graphs
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                device_out = self._compute(device_in)
        return graph, device_out

    def run(self, obs: FloatArray, rewards: FloatArray,
            states: list[RecurrentState | None]
            ) -> tuple[FloatArray, FloatArray | None, list[RecurrentState | None]]:
        """Raw outputs ``[B, A]``, values ``[B]`` (None without a critic) and new states
        for ``B`` normalised observations."""
        n = len(obs)
        largest = self.buckets[-1]
        rows = [self._run_chunk(obs[a:b], rewards[a:b], states[a:b])
                for a, b in chunks(n, largest)]
        out_rows = rows[0] if len(rows) == 1 else np.concatenate(rows)
        a = self.out_size
        out = out_rows[:, :a]
        value = out_rows[:, a] if self.has_value else None
        new_states: list[RecurrentState | None] = [None] * n
        if self.hidden:
            v = a + (1 if self.has_value else 0)
            h = self.hidden
            new_states = [(torch.from_numpy(row[v:v + h].copy()),
                           torch.from_numpy(row[v + h:v + 2 * h].copy())) for row in out_rows]
        return out, value, new_states

    def _run_chunk(self, obs: FloatArray, rewards: FloatArray,
                   states: list[RecurrentState | None]) -> FloatArray:
        m = len(obs)
        slot = self.slots[bucket_for(m, self.buckets)]
        stage = slot.host_in.numpy()
        n, h = self.obs_size, self.hidden
        stage[:m, :n] = obs
        stage[:m, n] = rewards
        if h:
            for i, state in enumerate(states):
                if state is None:
                    stage[i, n + 1:] = 0.0
                else:
                    stage[i, n + 1:n + 1 + h] = state[0].numpy()
                    stage[i, n + 1 + h:] = state[1].numpy()
        stage[m:] = 0.0  # padding rows: zeros in, ignored out
        cuda = self.device.type == "cuda"
        with torch.no_grad():
            slot.device_in.copy_(slot.host_in, non_blocking=cuda)
            if slot.graph is not None:
                slot.graph.replay()
                result = slot.device_out
                assert result is not None
            else:
                result = self._compute(slot.device_in)
            slot.host_out.copy_(result, non_blocking=cuda)
        if cuda:
            torch.cuda.current_stream().synchronize()
        out: FloatArray = slot.host_out.numpy()[:m].copy()
        return out


class DevicePolicy(Policy):
    """A :class:`TorchPolicy` served through :class:`BucketedForward`."""

    def __init__(self, inner: TorchPolicy, device: torch.device,
                 buckets: tuple[int, ...] = BUCKETS, capture: bool = True) -> None:
        self.inner = inner
        self.info = inner.info
        for module in inner.torch_modules():
            module.to(device)
        self.runner = BucketedForward(inner, device, buckets, capture)

    def initial_state(self) -> RecurrentState | None:
        return self.inner.initial_state()

    def act(self, observations: FloatArray, states: list[RecurrentState | None],
            explore: bool, rewards: FloatArray | None = None) -> PolicyOutput:
        obs = self.inner.observe.numpy(observations)
        if rewards is None:
            rewards = np.zeros(len(obs), dtype=np.float32)
        out, value, new_states = self.runner.run(obs, rewards, states)
        return finish_actions(out, value, explore, self.inner.std, self.inner.to_action,
                              new_states)


def serve_on(policy: Policy, device: str) -> tuple[Policy, dict[str, Any]]:
    """``policy`` placed on ``device`` (``cpu`` or ``cuda``), and what was done:
    ``{"asked", "used"}`` plus ``note`` (why not the device asked for) or, on a
    GPU, its name and the buckets captured."""
    if device == "cpu":
        return policy, {"asked": "cpu", "used": "cpu"}
    if device != "cuda":
        raise ValueError(f"device: cpu or cuda, got {device!r}")
    reason = cuda_unavailable()
    if reason is None and not isinstance(policy, TorchPolicy):
        reason = f"a {policy.info.format} policy has no torch forward pass to place there"
    if reason is not None:
        return policy, {"asked": device, "used": "cpu", "note": fallback_note(device, reason)}
    assert isinstance(policy, TorchPolicy)
    try:
        placed = DevicePolicy(policy, torch.device("cuda"))
    except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
        for module in policy.torch_modules():
            module.to("cpu")
        reason = f"capturing its CUDA graphs failed ({str(exc).splitlines()[0][:200]})"
        return policy, {"asked": device, "used": "cpu", "note": fallback_note(device, reason)}
    return placed, {"asked": device, "used": "cuda", "gpu": torch.cuda.get_device_name(),
                    "graphs": list(BUCKETS)}
