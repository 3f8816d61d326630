"""The numpy forward pass of small MLPs answers as torch does, to float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netlab.agent.checkpoints import load_policy
from netlab.agent.policies import tcp_mi5
from netlab.agent.policies.numpy_mlp import NumpyActorCritic
from netlab.agent.policies.spec import MlpActorCritic, SpecPolicy
from tests.netlab.agent.conftest import ONL_CHECKPOINT


def _models() -> list[MlpActorCritic]:
    onl = load_policy(ONL_CHECKPOINT)
    assert isinstance(onl, SpecPolicy) and isinstance(onl.model, MlpActorCritic)
    tcp = SpecPolicy(tcp_mi5.initial_checkpoint(3))
    assert isinstance(tcp.model, MlpActorCritic)
    torch.manual_seed(5)
    uneven = MlpActorCritic(6, 2, {"actor": [16, 8], "critic": [12], "activation": "elu",
                                   "output": "tanh"})
    no_critic = MlpActorCritic(3, 1, {"actor": [8], "activation": "relu",
                                      "output": "sigmoid"})
    return [onl.model, tcp.model, uneven, no_critic]


@pytest.mark.parametrize("batch", [1, 8, 32])
def test_numpy_forward_matches_torch(batch: int) -> None:
    rng = np.random.default_rng(batch)
    for model in _models():
        size = model.actor[0].in_features
        obs = rng.normal(0, 1, (batch, size)).astype(np.float32)
        with torch.inference_mode():
            want_out, want_value = model(torch.from_numpy(obs))
        forward = NumpyActorCritic(model.actor, model.critic)
        out, value = forward(obs)
        assert out.dtype == np.float32 and out.shape == tuple(want_out.shape)
        np.testing.assert_allclose(out, want_out.numpy(), rtol=1e-5, atol=1e-6)
        if want_value is None:
            assert value is None
        else:
            assert value is not None
            np.testing.assert_allclose(value.reshape(-1), want_value.numpy().reshape(-1),
                                       rtol=1e-5, atol=1e-6)


def test_actor_and_critic_share_one_chain_where_they_can() -> None:
    onl, tcp, uneven, no_critic = _models()
    assert NumpyActorCritic(onl.actor, onl.critic).fused is not None
    assert NumpyActorCritic(tcp.actor, tcp.critic).fused is not None
    assert NumpyActorCritic(uneven.actor, uneven.critic).fused is None  # other depths
    assert NumpyActorCritic(no_critic.actor, no_critic.critic).fused is None
