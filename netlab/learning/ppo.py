"""PPO with GAE(λ) for the project's actor-critic policies, optionally V-trace-corrected.

Stable API (``netlab finetune`` builds on it)::

    learner = PPOLearner(checkpoint_or_policy, PPOConfig(seed=1))
    stats = learner.update(rollout)   # {"policy_loss", "value_loss", "entropy",
                                      #  "approx_kl", "clip_frac", ...}: floats
    learner.act(raw_obs, explore=True) -> (model-space actions, log_prob, value)
    learner.checkpoint(metadata) -> dict   # own format, loads with load_policy
    learner.save(path, metadata)           # + optimizer/RNG state for resume
    learner.load_state(path)               # resume exactly where save() was

``checkpoint_or_policy``: an own-format checkpoint dict, OpenNetLab's PPO
state_dict, a path to either, or a :class:`SpecPolicy` with an MLP model
(``MlpActorCritic``, critic required). Observations in a
:class:`~netlab.learning.rollout.Rollout` are raw; the learner normalises
them with the checkpoint's own observation transform, so what it trains is
what the agent will serve.

The policy is OpenNetLab's: a Gaussian around the actor's output with a
state-independent standard deviation (their ``exploration_param``). Here
the standard deviation is learned (one ``log_std`` parameter, clamped to
``[min_std, max_std]``) so the entropy bonus means something; it is
written back as the checkpoint's ``std`` (what the agent explores with).

Update (Schulman et al., "Proximal Policy Optimization Algorithms", 2017;
advantages by GAE, Schulman et al., "High-Dimensional Continuous Control
Using Generalized Advantage Estimation", ICLR 2016): values of the batch
under the current critic, advantages by GAE(λ) with bootstrapping where a
sequence is truncated, then ``epochs`` passes over shuffled minibatches
minimising ``-min(r·A, clip(r, 1±ε)·A) + c_v·(V - R)² / 2 - c_e·H`` with
gradient-norm clipping; the shuffling generator is seeded.

Late actions (``vtrace=True``): when a decision missed its deadline the
flow acted with an older action, sampled at another state and maybe by
older weights, so the batch is off-policy. The correction is V-trace
(Espeholt et al., "IMPALA: Scalable Distributed Deep-RL with Importance
Weighted Actor-Learner Architectures", ICML 2018, §4.1): with
``ρ_t = min(ρ̄, π(a_t|x_t)/μ(a_t|x_t))`` and ``c_t = λ·min(c̄, π/μ)``
(π: the learner's policy before this update, μ: the behaviour
log-probability logged with the action), value targets are
``v_s = V(x_s) + δ_s + γ c_s (v_{s+1} - V(x_{s+1}))`` with
``δ_s = ρ_s (r_s + γ V(x_{s+1}) - V(x_s))`` and the policy-gradient
advantage is ``ρ_s (r_s + γ v_{s+1} - V(x_s))``. The clipped surrogate then
uses ``π_θ/π`` (the proximal policy is the pre-update learner, not the
stale behaviour), as in decoupled PPO (Hilton et al., "Batch
size-invariance for policy optimization", 2021), so a stale action is
weighted by V-trace's truncated ρ and never by an unbounded ratio.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from netlab import __version__
from netlab.agent.checkpoints import load_raw
from netlab.agent.policies import opennetlab
from netlab.agent.policies.spec import (
    FORMAT,
    ActionTransform,
    MlpActorCritic,
    ObservationTransform,
    SpecPolicy,
    make_checkpoint,
)
from netlab.errors import NetlabError
from netlab.learning.rollout import Rollout

LEARNER_KEY = "learner"
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PPOConfig:
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 1e-3
    epochs: int = 10
    minibatch_size: int = 256
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    learn_std: bool = True
    min_std: float = 0.01
    max_std: float = 0.5
    vtrace: bool = False
    rho_bar: float = 1.0
    c_bar: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            raise ValueError("gamma must be in (0, 1] and gae_lambda in [0, 1]")
        if self.clip <= 0 or self.epochs < 1 or self.minibatch_size < 1 or self.lr <= 0:
            raise ValueError("clip, lr, epochs and minibatch_size must be positive")
        if not 0 < self.min_std <= self.max_std:
            raise ValueError("need 0 < min_std <= max_std")


def _as_checkpoint(source: Any) -> dict[str, Any]:
    if isinstance(source, SpecPolicy):
        checkpoint = dict(source.spec)
        checkpoint["state_dict"] = {k: v.detach().clone()
                                    for k, v in source.model.state_dict().items()}
        return checkpoint
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise NetlabError("checkpoint file does not exist", where=str(path),
                              fix="give the path of a netlab or OpenNetLab checkpoint")
        source = load_raw(path)
    if isinstance(source, Mapping):
        if source.get("format") == FORMAT:
            return dict(source)
        if opennetlab.looks_like_opennetlab(source):
            return opennetlab.as_checkpoint(source)
    raise NetlabError("PPO needs a netlab-format MLP checkpoint, OpenNetLab's PPO state_dict "
                      "or a SpecPolicy", where="PPOLearner(checkpoint_or_policy)",
                      fix="start from opennetlab.initial_checkpoint() or a saved checkpoint")


def _gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor,
                       actions: torch.Tensor) -> torch.Tensor:
    z = (actions - mean) / log_std.exp()
    per_dim = -0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)
    return per_dim.sum(dim=-1)


class PPOLearner:
    """PPO on an ``MlpActorCritic`` checkpoint (module docstring for the maths)."""

    def __init__(self, checkpoint_or_policy: Any, config: PPOConfig | None = None) -> None:
        self.config = config or PPOConfig()
        spec = _as_checkpoint(checkpoint_or_policy)
        model_spec = spec.get("model") or {}
        if model_spec.get("type") != "mlp" or not isinstance(model_spec.get("critic"), list):
            raise NetlabError("PPO trains MLP actor-critics with a critic only",
                              where="checkpoint.model",
                              fix="use an mlp model with actor and critic layers")
        self.spec = {k: v for k, v in spec.items() if k not in ("state_dict", LEARNER_KEY)}
        self.obs_size, self.action_size = int(spec["obs_size"]), int(spec["action_size"])
        self.observe = ObservationTransform(spec.get("observation") or {}, self.obs_size)
        self.to_action = ActionTransform(spec.get("action") or {}, self.action_size)
        if self.to_action.discrete:
            raise NetlabError("PPO here is for continuous actions", where="checkpoint.action",
                              fix="use a log, linear or identity action")
        torch.manual_seed(self.config.seed)
        self.model = MlpActorCritic(self.obs_size, self.action_size, model_spec)
        self.model.load_state_dict(dict(spec["state_dict"]))
        std = float(spec.get("std", 0.05))
        std = min(max(std, self.config.min_std), self.config.max_std)
        self.log_std = nn.Parameter(torch.tensor(math.log(std)),
                                    requires_grad=self.config.learn_std)
        params = list(self.model.parameters()) + ([self.log_std] if self.config.learn_std else [])
        self.optimizer = torch.optim.Adam(params, lr=self.config.lr)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.updates = 0
        self.steps_seen = 0

    # ---- acting -----------------------------------------------------------------------

    @property
    def std(self) -> float:
        return float(self._clamped_log_std().detach().exp())

    def _clamped_log_std(self) -> torch.Tensor:
        return self.log_std.clamp(math.log(self.config.min_std), math.log(self.config.max_std))

    def normalise(self, raw_obs: npt.ArrayLike) -> torch.Tensor:
        raw = np.asarray(raw_obs, dtype=np.float32).reshape(-1, self.obs_size)
        return torch.from_numpy(self.observe.numpy(raw))

    def _critic(self, obs: torch.Tensor) -> torch.Tensor:
        critic = self.model.critic
        assert critic is not None
        value: torch.Tensor = critic(obs).squeeze(-1)
        return value

    def act(self, raw_obs: npt.ArrayLike, explore: bool = True,
            generator: np.random.Generator | None = None) -> tuple[F32, F32, F32]:
        """(model-space actions [B, A], log_prob [B], value [B]) for raw observations;
        exploring samples the Gaussian with ``generator`` (seeded by the caller)."""
        with torch.no_grad():
            obs = self.normalise(raw_obs)
            mean = self.model.actor(obs).double().numpy()
            value = self._critic(obs).numpy().astype(np.float32)
            log_std = float(self._clamped_log_std())
        std = math.exp(log_std)
        if explore:
            rng = generator if generator is not None else np.random.default_rng()
            actions = mean + rng.normal(0.0, std, size=mean.shape)
        else:
            actions = mean
        z = (actions - mean) / std
        log_prob = (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(axis=1)
        return actions.astype(np.float32), log_prob.astype(np.float32), value

    def physical(self, model_actions: npt.ArrayLike) -> F32:
        """Model-space actions in the checkpoint's physical units (what the agent sends)."""
        return self.to_action(np.asarray(model_actions, dtype=np.float64).reshape(
            -1, self.action_size))

    # ---- learning ---------------------------------------------------------------------

    def targets(self, batch: Rollout, obs: torch.Tensor, actions: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(advantages, returns, proximal log-prob, importance weights ρ) for the batch."""
        cfg = self.config
        n = len(batch)
        with torch.no_grad():
            values = self._critic(obs).double().numpy()
            bootstrap = self._critic(self.normalise(batch.next_obs)).double().numpy()
            behaviour = torch.from_numpy(batch.log_prob.astype(np.float32))
            if cfg.vtrace:
                proximal = _gaussian_log_prob(self.model.actor(obs), self._clamped_log_std(),
                                              actions)
                ratio = (proximal - behaviour).double().exp().numpy()
            else:
                proximal = behaviour
                ratio = np.ones(n)
        rewards = batch.rewards.astype(np.float64)
        ends = batch.terminated | batch.truncated
        # value after step t: bootstrap at a truncation, zero at a termination
        next_values = np.where(batch.terminated, 0.0,
                               np.where(batch.truncated, bootstrap, np.roll(values, -1)))
        advantages = np.zeros(n)
        returns = np.zeros(n)
        if cfg.vtrace:
            rho = np.minimum(cfg.rho_bar, ratio)
            c = cfg.gae_lambda * np.minimum(cfg.c_bar, ratio)
            v_next = np.zeros(n)  # v_{s+1}
            carry = 0.0  # v_{s+1} - V(x_{s+1})
            for t in range(n - 1, -1, -1):
                if ends[t]:
                    carry = 0.0
                delta = rho[t] * (rewards[t] + cfg.gamma * next_values[t] - values[t])
                v_s = values[t] + delta + cfg.gamma * c[t] * carry
                v_next[t] = next_values[t] + carry
                returns[t] = v_s
                carry = v_s - values[t]
            advantages = rho * (rewards + cfg.gamma * v_next - values)
        else:
            rho = ratio
            gae = 0.0
            for t in range(n - 1, -1, -1):
                if ends[t]:
                    gae = 0.0
                delta = rewards[t] + cfg.gamma * next_values[t] - values[t]
                gae = delta + cfg.gamma * cfg.gae_lambda * gae
                advantages[t] = gae
            returns = advantages + values
        return (torch.from_numpy(advantages).float(), torch.from_numpy(returns).float(),
                proximal.float(), torch.from_numpy(np.asarray(rho)).float())

    def update(self, rollout: Rollout) -> dict[str, float]:
        """One PPO update on ``rollout``; returns mean losses and diagnostics."""
        cfg = self.config
        obs = self.normalise(rollout.obs)
        actions = torch.from_numpy(rollout.actions.astype(np.float32))
        advantages, returns, old_log_prob, rho = self.targets(rollout, obs, actions)
        if cfg.normalize_advantages and len(rollout) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        n = len(rollout)
        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0,
                "clip_frac": 0.0}
        batches = 0
        self.model.train()
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, cfg.minibatch_size):
                idx = order[start:start + cfg.minibatch_size]
                log_std = self._clamped_log_std()
                mean = self.model.actor(obs[idx])
                new_log_prob = _gaussian_log_prob(mean, log_std, actions[idx])
                log_ratio = new_log_prob - old_log_prob[idx]
                ratio = log_ratio.exp()
                adv = advantages[idx]
                surrogate = torch.min(ratio * adv,
                                      ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv)
                policy_loss = -surrogate.mean()
                value_loss = 0.5 * (self._critic(obs[idx]) - returns[idx]).pow(2).mean()
                entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std) * self.action_size
                loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
                self.optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"],
                                         cfg.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    sums["policy_loss"] += float(policy_loss)
                    sums["value_loss"] += float(value_loss)
                    sums["entropy"] += float(entropy)
                    sums["approx_kl"] += float(((ratio - 1) - log_ratio).mean())
                    sums["clip_frac"] += float(((ratio - 1).abs() > cfg.clip).float().mean())
                batches += 1
        self.model.eval()
        self.updates += 1
        self.steps_seen += n
        with torch.no_grad():
            values = self._critic(obs)
            explained = 1 - float((returns - values).var() / (returns.var() + 1e-8))
        stats = {key: value / max(1, batches) for key, value in sums.items()}
        stats.update(explained_variance=explained, std=self.std, steps=float(n),
                     mean_reward=float(rollout.rewards.mean()),
                     late_fraction=float(rollout.late.mean()),
                     mean_rho=float(rho.mean()), updates=float(self.updates))
        return stats

    # ---- checkpoints ------------------------------------------------------------------

    def checkpoint(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """The policy in the project's own format (what ``load_policy`` and the agent read)."""
        meta = {"trainer": "netlab.learning.ppo", "config": asdict(self.config),
                "seed": self.config.seed, "updates": self.updates,
                "steps": self.steps_seen, "versions": versions(),
                **{k: v for k, v in dict(self.spec.get("metadata") or {}).items()
                   if k in ("origin", "step_ms", "window_ms")},
                **(metadata or {})}
        return make_checkpoint(
            self.model, contract=str(self.spec.get("contract", "generic")),
            obs_size=self.obs_size, action_size=self.action_size,
            model_spec=dict(self.spec["model"]), observation=self.observe.spec,
            action=self.to_action.spec, std=self.std, metadata=meta)

    def learner_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(),
                "log_std": self.log_std.detach().clone(),
                "generator": self.generator.get_state(), "updates": self.updates,
                "steps": self.steps_seen, "config": asdict(self.config)}

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None, *,
             resumable: bool = True) -> Path:
        """Write the checkpoint (plus optimizer/RNG state unless ``resumable=False``)
        atomically; it loads with ``torch.load(weights_only=True)``."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.checkpoint(metadata)
        if resumable:
            data[LEARNER_KEY] = self.learner_state()
        tmp = target.with_name(target.name + ".tmp")
        torch.save(data, tmp)
        tmp.replace(target)
        return target

    def load_state(self, path: str | Path) -> None:
        """Resume from :meth:`save`'s file: weights, std, optimizer, RNG and counters."""
        data = load_raw(Path(path))
        state = data.get(LEARNER_KEY) if isinstance(data, Mapping) else None
        if not isinstance(state, Mapping):
            raise NetlabError("checkpoint holds no learner state to resume from",
                              where=str(path), fix="resume from a file PPOLearner.save wrote "
                                                   "with resumable=True")
        self.model.load_state_dict(dict(data["state_dict"]))
        with torch.no_grad():
            self.log_std.copy_(state["log_std"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        self.steps_seen = int(state["steps"])

    def policy(self) -> SpecPolicy:
        """The current weights as a servable policy (for evaluation)."""
        return SpecPolicy(self.checkpoint())


def versions() -> dict[str, str]:
    return {"netlab": __version__, "torch": str(torch.__version__), "numpy": np.__version__,
            "python": platform.python_version()}
