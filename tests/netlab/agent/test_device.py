"""Serving on a device: batch buckets, padding and chunking of the graph path (run
eagerly on the CPU, where CI runs), and the fallback where there is no GPU."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from endpoints.agent_client import AgentClient
from netlab.agent.checkpoints import load_policy
from netlab.agent.device import (
    BUCKETS,
    DevicePolicy,
    bucket_for,
    chunks,
    cuda_unavailable,
    serve_on,
)
from netlab.agent.policies.base import RecurrentState, TorchPolicy
from netlab.agent.policies.spec import LstmActorCritic, SpecPolicy, make_checkpoint
from netlab.agent.policies.torchscript import TorchScriptPolicy
from tests.netlab.agent.conftest import ONL_CHECKPOINT, RunningAgent

NO_GPU = torch.cuda.is_available() is False


def test_buckets_hold_each_batch_in_the_smallest_that_fits() -> None:
    assert [bucket_for(n) for n in (1, 2, 8, 9, 32, 33, 100)] == [1, 8, 8, 32, 32, 32, 32]
    assert chunks(70, 32) == [(0, 32), (32, 64), (64, 70)]
    assert chunks(8, 32) == [(0, 8)]
    assert chunks(0, 32) == []


def _lstm_policy() -> SpecPolicy:
    torch.manual_seed(1)
    spec = {"type": "lstm", "torso": [16, 16], "lstm": 8, "reward_input": True,
            "activation": "relu", "output": "identity"}
    model = LstmActorCritic(6, 3, spec)
    return SpecPolicy(make_checkpoint(model, contract="test-lstm", obs_size=6, action_size=3,
                                      model_spec=spec, action={"type": "discrete"}))


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 12)
        self.core = nn.LSTMCell(12, 4)
        self.head = nn.Linear(4, 2)
        self.hidden_size = 4

    def forward(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, c = self.core(torch.relu(self.fc(obs)), (h, c))
        return self.head(h), h, c


def _torchscript_policy(tmp_path: Path) -> TorchScriptPolicy:
    torch.manual_seed(2)
    path = tmp_path / "recurrent.pt"
    torch.jit.save(torch.jit.script(_Recurrent()), str(path))
    return TorchScriptPolicy(path)


def _policies(tmp_path: Path) -> list[TorchPolicy]:
    onl = load_policy(ONL_CHECKPOINT)
    assert isinstance(onl, TorchPolicy)
    return [onl, _lstm_policy(), _torchscript_policy(tmp_path)]


@pytest.mark.parametrize("batch", [1, 3, 8, 9, 32, 40, 70])
def test_bucketed_forward_answers_as_the_policy_itself(tmp_path: Path, batch: int) -> None:
    """Padding to a bucket and chunking beyond the largest change no row's answer."""
    rng = np.random.default_rng(batch)
    for policy in _policies(tmp_path):
        size = policy.info.obs_size
        obs = rng.uniform(0, 1, (batch, size)).astype(np.float32)
        if size == 4:  # OpenNetLab's raw units
            obs *= np.array([2e6, 100, 0.1, 2e6], dtype=np.float32)
        rewards = rng.uniform(-1, 1, batch).astype(np.float32)
        states: list[RecurrentState | None] = [None] * batch
        want = policy.act(obs, states, False, rewards)
        placed = DevicePolicy(policy, torch.device("cpu"), capture=False)
        got = placed.act(obs, states, False, rewards)
        np.testing.assert_allclose(got.actions, want.actions, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.value, want.value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.log_prob, want.log_prob, rtol=1e-5, atol=1e-5)
        if policy.hidden:
            for mine, theirs in zip(got.states, want.states, strict=True):
                assert mine is not None and theirs is not None
                np.testing.assert_allclose(mine[0].numpy(), theirs[0].numpy(), rtol=1e-5,
                                           atol=1e-6)
                np.testing.assert_allclose(mine[1].numpy(), theirs[1].numpy(), rtol=1e-5,
                                           atol=1e-6)
            # the states carried on: a second step from them agrees as well
            again = placed.act(obs, got.states, False, rewards)
            expected = policy.act(obs, want.states, False, rewards)
            np.testing.assert_allclose(again.actions, expected.actions, rtol=1e-5, atol=1e-6)


def test_padding_rows_are_zero_whatever_ran_before() -> None:
    policy = _lstm_policy()
    placed = DevicePolicy(policy, torch.device("cpu"), capture=False)
    full = np.ones((8, 6), dtype=np.float32)
    placed.act(full, [None] * 8, False, np.ones(8, dtype=np.float32))
    placed.act(full[:3], [None] * 3, False, np.ones(3, dtype=np.float32))
    stage = placed.runner.slots[8].host_in.numpy()
    assert (stage[3:] == 0).all() and (stage[:3, :6] != 0).any()
    assert set(placed.runner.slots) == set(BUCKETS)


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU: nothing to fall back from")
def test_cuda_without_a_gpu_serves_on_the_cpu_and_says_why() -> None:
    policy = load_policy(ONL_CHECKPOINT)
    placed, device = serve_on(policy, "cuda")
    assert placed is policy
    reason = cuda_unavailable()
    assert reason is not None
    assert device == {"asked": "cuda", "used": "cpu", "note": (
        f"device cuda asked for, but {reason}; serving on cpu (install a CUDA build of "
        "torch on a machine with a GPU to serve there)")}
    assert serve_on(policy, "cpu") == (policy, {"asked": "cpu", "used": "cpu"})


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU: nothing to fall back from")
def test_agent_asked_for_cuda_without_a_gpu_prints_and_records_the_fallback(
        start_agent: Callable[..., RunningAgent]) -> None:
    agent = start_agent("--device", "cuda", "--priority", "none")
    client = AgentClient(agent.socket, policy="rtc-onl4", obs_size=4, action_size=1)
    try:
        decision = client.decide(np.array([1e6, 20.0, 0.0, 1e6], dtype=np.float32), wait_s=5)
        assert decision.action is not None
    finally:
        client.close()
        agent.stop()
    log = agent.log.read_text()
    assert f"agent: device cuda asked for, but {cuda_unavailable()}; serving on cpu" in log
    device = json.loads(agent.stats.read_text())["device"]
    assert device["asked"] == "cuda" and device["used"] == "cpu"
    assert device["note"].startswith("device cuda asked for, but ")
