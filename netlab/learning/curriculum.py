"""Genet's curriculum: find where the policy trails the baseline most, train there more.

Genet (Xia et al., SIGCOMM 2022, §4) alternates training with a search of
the environment-parameter space for the configuration with the largest
*gap-to-baseline* (baseline reward − policy reward, averaged over a few
environments drawn from that configuration) using Bayesian optimisation,
and adds the winner to the training distribution. Here the search runs
with ``bayesian-optimization`` (a Gaussian-process optimiser, maintained on
PyPI) over :data:`~netlab.learning.scenario_set.DIMENSIONS`; the gap is the
OpenNetLab network score, measured either in emulation (real labs, policy
vs GCC, :class:`EmulatedGap`) or in the fast simulator (:class:`SimGap`,
against GCC, a baseline checkpoint or a fixed rate).
:class:`TrainingMix` keeps the distribution: each added configuration takes
``weight`` (0.3) of the probability mass, the rest keeps its proportions.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netlab.errors import NetlabError
from netlab.learning.exclusions import Counts
from netlab.learning.labs import EpisodePool, EpisodeSpec, LabPool
from netlab.learning.scenario_set import EnvConfig, ParamSpace, env_trace

GapFunction = Callable[[EnvConfig], float]
DEFAULT_WEIGHT = 0.3
POLICY = "policy"  # the controller being tuned, in exclusion counts


@dataclass
class TrainingMix:
    """Weighted environment configurations; ``sample`` draws episodes from them."""

    base: list[EnvConfig]
    added: list[tuple[EnvConfig, float]] = field(default_factory=list)

    def weights(self) -> list[tuple[EnvConfig | None, float]]:
        """(config, probability); None stands for 'uniformly one of the base set'."""
        mass = 1.0
        out: list[tuple[EnvConfig | None, float]] = []
        for env, weight in reversed(self.added):
            out.append((env, mass * weight))
            mass *= 1 - weight
        out.append((None, mass))
        return list(reversed(out))

    def add(self, env: EnvConfig, weight: float = DEFAULT_WEIGHT) -> None:
        if not 0 < weight < 1:
            raise NetlabError(f"curriculum weight {weight} outside (0, 1)",
                              where="curriculum.weight", fix="use e.g. 0.3 (Genet)")
        self.added.append((env, weight))

    def sample(self, rng: random.Random, count: int) -> list[EnvConfig]:
        """``count`` environments; a curriculum config gets a fresh trace seed each time
        (the configuration is the point, not one trace of it)."""
        choices = self.weights()
        picked = []
        for _ in range(count):
            env, _ = rng.choices(choices, weights=[w for _, w in choices])[0]
            if env is None:
                picked.append(rng.choice(self.base))
            else:
                picked.append(env.with_seed(rng.randrange(1 << 30)))
        return picked

    def to_json(self) -> list[dict[str, Any]]:
        return [{"env": env.as_dict(), "weight": weight} for env, weight in self.added]

    def load_added(self, data: Sequence[dict[str, Any]]) -> None:
        self.added = [(EnvConfig.from_dict(d["env"]), float(d["weight"])) for d in data]


@dataclass
class SearchResult:
    best: EnvConfig
    best_gap: float
    trials: list[tuple[EnvConfig, float]]

    def to_json(self) -> dict[str, Any]:
        return {"best": self.best.as_dict(), "best_gap": self.best_gap,
                "trials": [{"env": e.as_dict(), "gap": g} for e, g in self.trials]}


def search(gap: GapFunction, space: ParamSpace, *, init_points: int = 3, iterations: int = 5,
           seed: int = 0) -> SearchResult:
    """Maximise ``gap`` over ``space`` with a Gaussian-process BO (UCB acquisition).

    Dimensions with a point range are held fixed (BO sees only the others)."""
    from bayes_opt import BayesianOptimization
    from bayes_opt.acquisition import UpperConfidenceBound

    free = {k: (lo, hi) for k, (lo, hi) in space.ranges.items() if hi > lo}
    if not free:
        raise NetlabError("every curriculum dimension is fixed: nothing to search",
                          where="curriculum.space", fix="give at least one [low, high] range")
    optimiser = BayesianOptimization(
        f=None, pbounds=free, random_state=seed, verbose=0, allow_duplicate_points=True,
        acquisition_function=UpperConfidenceBound(kappa=2.576))
    rng = random.Random(seed)
    trials: list[tuple[EnvConfig, float]] = []
    for i in range(init_points + iterations):
        if i < init_points:
            point = {k: rng.uniform(lo, hi) for k, (lo, hi) in free.items()}
        else:
            point = {k: float(v) for k, v in optimiser.suggest().items()}
        env = space.config(point, seed=seed * 1000 + i)
        value = float(gap(env))
        optimiser.register(params=point, target=value)
        trials.append((env, value))
    best_env, best_gap = max(trials, key=lambda t: t[1])
    return SearchResult(best_env, best_gap, trials)


@dataclass
class EmulatedGap:
    """Gap-to-baseline in real labs: mean over ``k`` trace seeds of the configuration
    of (GCC's score − the policy's score), both alone on the same trace. A pair
    counts only when both episodes are kept (see :mod:`netlab.learning.exclusions`);
    ``counts`` holds what became of each controller's episodes."""

    checkpoint: Path
    out_dir: Path
    k: int = 2
    parallel: int = 2
    deadline_s: float = 0.02
    baseline: str = "gcc"
    backend: str | None = None
    lab_prefix: str = "ftc"
    calls: int = 0
    require_faithful: bool = True
    pool: EpisodePool | None = None  # None: ``parallel`` local labs
    counts: dict[str, Counts] = field(default_factory=dict)

    def __call__(self, env: EnvConfig) -> float:
        self.calls += 1
        specs: list[EpisodeSpec] = []
        for j in range(self.k):
            variant = env.with_seed(env.seed * 100 + j)
            base = self.out_dir / f"gap-{self.calls:03d}-{j}"
            specs.append(EpisodeSpec(variant, str(base / "policy"), estimator="policy",
                                     checkpoint=str(self.checkpoint), deadline_s=self.deadline_s,
                                     backend=self.backend))
            specs.append(EpisodeSpec(variant, str(base / self.baseline),
                                     estimator=self.baseline, backend=self.backend))
        pool = self.pool or LabPool(self.parallel, lab_prefix=self.lab_prefix)
        results = pool.run(specs)
        gaps = []
        for policy, baseline in zip(results[0::2], results[1::2], strict=True):
            kept = [self.counts.setdefault(name, Counts()).count(r, self.require_faithful)
                    for name, r in ((POLICY, policy), (self.baseline, baseline))]
            if all(kept) and policy.score is not None and baseline.score is not None:
                gaps.append(baseline.score - policy.score)
        if not gaps:
            errors = "; ".join((r.error or ("no score" if r.score is None else
                                           "not faithful"))[:120] for r in results)
            raise NetlabError(f"no gap measured for {env.label}: {errors}",
                              where=str(self.out_dir), fix="see the episodes' episode.out")
        return statistics.fmean(gaps)


@dataclass
class SimGap:
    """Gap-to-baseline in the fast simulator (``netlab.learning.sim``): the
    baseline is ``gcc`` (the lab's sender-side GCC, run by the simulator), a
    policy checkpoint or a fixed estimate in bit/s."""

    checkpoint: Path
    baseline: Path | float | str
    k: int = 3
    step_s: float | None = None  # None: the lab's 200 ms poll

    def __call__(self, env: EnvConfig) -> float:
        from netlab.agent.checkpoints import load_policy
        from netlab.agent.policies.base import Policy
        from netlab.learning.sim import LAB_POLL_S, SimConfig, run_episode
        from netlab.scenario.model import Estimator
        from shaping.spec import LinkShape, QueueLimit

        policy = load_policy(self.checkpoint)
        baseline: Policy | float | Estimator
        if isinstance(self.baseline, float):
            baseline = self.baseline
        elif self.baseline == "gcc":
            baseline = Estimator("gcc")
        else:
            baseline = load_policy(Path(self.baseline))
        link = LinkShape(delay_s=env.delay_ms / 1e3, loss=env.loss_pct / 100,
                         queue=QueueLimit(packets=max(1, round(env.queue_pkt))))
        config = SimConfig(step_s=self.step_s or LAB_POLL_S, duration_s=env.duration_s,
                           link=link)
        gaps = []
        for j in range(self.k):
            trace = env_trace(env.with_seed(env.seed * 100 + j))
            ours = run_episode(policy, trace, config, seed=j).scores.get("network")
            theirs = run_episode(baseline, trace, config, seed=j).scores.get("network")
            if ours is not None and theirs is not None:
                gaps.append(float(theirs) - float(ours))
        return statistics.fmean(gaps) if gaps else 0.0


def with_duration(env: EnvConfig, duration_s: float) -> EnvConfig:
    return replace(env, duration_s=duration_s)
