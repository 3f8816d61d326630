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


def test_one_row_in_python_floats_matches_the_batched_pass() -> None:
    """``one`` (the agent's single decision, through the row chain's buffers) gives
    what the array path gives, sigmoid tails included (a large negative logit must
    not overflow ``math.exp``), call after call."""
    rng = np.random.default_rng(3)
    for model in _models():
        forward = NumpyActorCritic(model.actor, model.critic)
        size = model.actor[0].in_features
        for scale in (1.0, 1e3):
            obs = (rng.normal(0, scale, (1, size))).astype(np.float32)
            out, value = forward(obs)
            outs, one_value = forward.one(obs[0].tolist())
            np.testing.assert_allclose(outs, out[0], rtol=1e-6, atol=1e-7)
            if value is None:
                assert one_value is None
            else:
                assert one_value == pytest.approx(float(value[0, 0]), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize(("action", "observation"), [
    ({"type": "log", "low": 0.01, "high": 8.0, "unit": 1e6},
     {"type": "opennetlab", "low": 0.01, "high": 8.0, "unit": 1e6}),
    ({"type": "linear", "low": [1.0], "high": [5.0]},
     {"type": "affine", "mean": [0.5, -1.0, 0.0, 2.0], "scale": [2.0, 0.5, 1.0, 4.0]}),
    ({"type": "identity"}, {"type": "identity"})])
def test_a_single_deterministic_decision_is_the_batch_decision(
        action: dict[str, object], observation: dict[str, object]) -> None:
    """SpecPolicy's one-flow path (Python floats past the forward pass) answers as
    the batch path does for the same row: actions, log-probability and value."""
    from netlab.agent.policies.spec import make_checkpoint

    torch.manual_seed(2)
    model = MlpActorCritic(4, 1, {"actor": [32, 16], "critic": [32, 16],
                                  "activation": "relu", "output": "sigmoid"})
    policy = SpecPolicy(make_checkpoint(model, contract="t", obs_size=4, action_size=1,
                                        model_spec={"type": "mlp", "actor": [32, 16],
                                                    "critic": [32, 16], "activation": "relu",
                                                    "output": "sigmoid"},
                                        action=action, observation=observation))
    assert policy.single is not None
    rng = np.random.default_rng(4)
    for _ in range(20):
        obs = np.abs(rng.normal(0, 3, (2, 4))).astype(np.float32) * (
            1e6 if observation["type"] == "opennetlab" else 1)
        batch = policy.act(obs, [None, None], explore=False)
        one = policy.act(obs[:1], [None], explore=False)
        for got, want in ((one.actions, batch.actions[:1]), (one.value, batch.value[:1]),
                          (one.log_prob, batch.log_prob[:1])):
            assert got.dtype == np.float32 and got.shape == want.shape
            # a 1-row product and a 2-row one sum in other orders: float32 rounding
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        actions, log_prob, value = policy.single(obs[0].tolist())  # what the lane sends
        assert np.array_equal(np.float32([*actions, log_prob, value]),
                              [*one.actions[0], one.log_prob[0], one.value[0]])
