"""PPO: learns a toy task, V-trace reduces to λ-returns on-policy, and a saved
learner resumes bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from netlab.agent.checkpoints import load_policy
from netlab.agent.policies import opennetlab
from netlab.agent.policies.spec import ActionTransform, MlpActorCritic, make_checkpoint
from netlab.agent.transitions import transition_dtype
from netlab.learning.ppo import PPOConfig, PPOLearner
from netlab.learning.rollout import Rollout, rollout_from_transitions

TARGET = 0.8


def _toy_checkpoint(seed: int = 0) -> dict[str, object]:
    torch.manual_seed(seed)
    spec = {"type": "mlp", "actor": [16], "critic": [16], "activation": "tanh",
            "output": "sigmoid"}
    return make_checkpoint(MlpActorCritic(2, 1, spec), contract="toy", obs_size=2,
                           action_size=1, model_spec=spec, std=0.2)


def _bandit(learner: PPOLearner, rng: np.random.Generator, n: int = 256) -> Rollout:
    """One-step episodes: reward -(a - 0.8)², observations noise."""
    obs = rng.normal(size=(n, 2)).astype(np.float32)
    actions, log_prob, _ = learner.act(obs, explore=True, generator=rng)
    rewards = -(actions[:, 0] - TARGET) ** 2
    return Rollout(obs=obs, actions=actions, log_prob=log_prob, rewards=rewards,
                   next_obs=obs, terminated=np.ones(n, dtype=bool))


def _states(rng: np.random.Generator, n: int) -> np.ndarray:
    """Raw rtc-onl4 states: rate bps, delay ms, loss ratio, estimate bps."""
    return np.column_stack([rng.uniform(1e5, 4e6, n), rng.uniform(0, 300, n),
                            rng.uniform(0, 0.2, n), rng.uniform(1e5, 4e6, n)]).astype(np.float32)


def test_ppo_learns_a_bandit() -> None:
    learner = PPOLearner(_toy_checkpoint(), PPOConfig(lr=3e-3, epochs=4, minibatch_size=64,
                                                      seed=1))
    rng = np.random.default_rng(1)
    probe = rng.normal(size=(64, 2)).astype(np.float32)
    before = float(np.mean((learner.act(probe, explore=False)[0] - TARGET) ** 2))
    for _ in range(40):
        stats = learner.update(_bandit(learner, rng))
    after = float(np.mean((learner.act(probe, explore=False)[0] - TARGET) ** 2))
    assert after < before / 4 and after < 0.01
    assert set(stats) >= {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac"}
    assert all(np.isfinite(v) for v in stats.values())


def test_vtrace_on_policy_gives_the_lambda_returns() -> None:
    """Espeholt et al. 2018: with π = μ (ρ = c = 1 untruncated) V-trace targets are the
    TD(λ) returns, i.e. GAE's advantages plus values."""
    rng = np.random.default_rng(2)
    checkpoint = opennetlab.initial_checkpoint(3)
    gae = PPOLearner(checkpoint, PPOConfig(gamma=0.9, gae_lambda=0.8))
    vtrace = PPOLearner(checkpoint, PPOConfig(gamma=0.9, gae_lambda=0.8, vtrace=True))
    obs = _states(rng, 50)
    actions, log_prob, _ = gae.act(obs, explore=True, generator=rng)
    rollout = Rollout(obs=obs[:-1], actions=actions[:-1], log_prob=log_prob[:-1],
                      rewards=rng.uniform(0, 1, 49), next_obs=obs[1:],
                      terminated=np.arange(49) == 20)
    obs_t = gae.normalise(rollout.obs)
    act_t = torch.from_numpy(rollout.actions)
    _, returns_gae, _, _ = gae.targets(rollout, obs_t, act_t)
    _, returns_vt, _, rho = vtrace.targets(rollout, obs_t, act_t)
    assert torch.allclose(rho, torch.ones_like(rho), atol=1e-4)
    assert torch.allclose(returns_gae, returns_vt, rtol=1e-4, atol=1e-5)


def test_vtrace_truncates_stale_actions() -> None:
    rng = np.random.default_rng(3)
    learner = PPOLearner(opennetlab.initial_checkpoint(1), PPOConfig(vtrace=True))
    obs = _states(rng, 64)
    actions, log_prob, _ = learner.act(obs, explore=True, generator=rng)
    late = np.zeros(64, dtype=bool)
    late[1::4] = True
    actions[late] = np.clip(actions[late] + 0.3, 0, 1)  # a stale, improbable action
    stats = learner.update(Rollout(obs=obs, actions=actions, log_prob=log_prob,
                                   rewards=np.ones(64), next_obs=obs, late=late))
    assert stats["late_fraction"] == 0.25
    assert stats["mean_rho"] <= 1.0 and stats["mean_rho"] < 0.9


def test_save_resume_is_exact(tmp_path: Path) -> None:
    config = PPOConfig(lr=1e-3, epochs=2, minibatch_size=32, seed=5)
    rng = np.random.default_rng(5)
    first = PPOLearner(_toy_checkpoint(4), config)
    for _ in range(3):
        first.update(_bandit(first, rng, 96))
    path = first.save(tmp_path / "ckpt.pth", {"note": "resume test"})
    obs = np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32)
    at_save = first.act(obs, explore=False)[0]
    second = PPOLearner(_toy_checkpoint(4), config)
    second.load_state(path)
    batch = _bandit(first, np.random.default_rng(9), 96)
    stats_a, stats_b = first.update(batch), second.update(batch)
    assert stats_a == stats_b
    for (name, a), (_, b) in zip(first.model.state_dict().items(),
                                 second.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert first.std == second.std and second.updates == 4
    served = load_policy(path)  # the agent's loader reads the same file
    physical = served.act(obs, [None] * 5, explore=False).actions
    assert np.allclose(physical, at_save, atol=1e-5)  # identity action: same numbers
    assert not np.allclose(physical, second.act(obs, explore=False)[0], atol=1e-5)
    assert served.info.metadata["note"] == "resume test"
    assert served.info.metadata["versions"]["torch"] == torch.__version__


def test_rollout_from_agent_transitions() -> None:
    rows = np.zeros(6, dtype=transition_dtype(4, 1))
    rows["flow"] = [1, 2, 1, 1, 2, 2]
    rows["seq"] = [1, 1, 2, 3, 2, 3]
    rows["reward"] = [0.0, 0.0, 0.5, 0.7, 0.2, 0.3]
    rows["obs"][:, 0] = np.arange(6) * 1e5
    rows["action"][:, 0] = [1e5, 2e5, 3e5, 4e5, 5e5, 6e5]
    rows["log_prob"] = [-1, -2, -3, -4, -5, -6]
    rows["t_request_ns"] = 0
    rows["t_reply_ns"] = [100, 100, 5000, 100, 100, 100]
    transform = ActionTransform(opennetlab.ACTION, 1)
    batch = rollout_from_transitions(rows, transform, deadline_ns=1000)
    assert len(batch) == 4  # each flow's last row has no outcome yet
    assert batch.rewards.tolist() == [0.5, 0.699999988079071, 0.20000000298023224,
                                      0.30000001192092896]
    assert batch.late.tolist() == [False, True, False, False]
    # the late row acted with its predecessor's action and log-probability
    assert batch.actions[1, 0] == batch.actions[0, 0] and batch.log_prob[1] == -1
    assert np.allclose(transform(batch.actions[[0, 2]].astype(np.float64))[:, 0], [1e5, 2e5],
                       rtol=1e-4)
    assert batch.truncated[1] and batch.truncated[3]
    # A learner may train on another objective: the reward is recomputed from each
    # row's next observation (the state the flow reported after the action).
    from endpoints.agent_rtc import qoe_reward

    rows["obs"][:, 1] = [0, 0, 100, 400, 0, 50]  # mean delay, ms
    rescored = rollout_from_transitions(rows, transform, deadline_ns=1000, reward=qoe_reward)
    expected = [qoe_reward(rows["obs"][i].tolist()) for i in (2, 3, 4, 5)]
    assert np.allclose(rescored.rewards, expected)
    assert rescored.rewards[1] < rescored.rewards[0]  # 400 ms of delay costs
    # A capacity reward reads what the link offered before each observation was sent.
    from endpoints.agent_rtc import capacity_reward

    rows["t_request_ns"] = [0, 0, 1_000_000_000, 2_000_000_000, 1_000_000_000, 2_000_000_000]
    offered = {1_000_000_000: 4e5, 2_000_000_000: 1e6}
    by_link = rollout_from_transitions(rows, transform, reward=capacity_reward,
                                       capacity=offered.__getitem__)
    expected = [capacity_reward(rows["obs"][i].tolist(), offered[int(rows["t_request_ns"][i])])
                for i in (2, 3, 4, 5)]
    assert np.allclose(by_link.rewards, expected)
    with pytest.raises(ValueError, match="capacity"):
        rollout_from_transitions(rows, transform, reward=capacity_reward)
