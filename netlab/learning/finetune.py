"""``netlab finetune CONFIG``: PPO fine-tuning of a policy in real labs.

Each round runs ``episodes`` episodes, K labs at a time
(:class:`~netlab.learning.labs.LabPool`), with the receivers' agents serving
the current weights and sampling actions (``--explore``); their transitions
(drained from the agents) become one :class:`~netlab.learning.rollout.Rollout`
per episode, and :class:`~netlab.learning.ppo.PPOLearner` updates on the
lot (GAE; V-trace for late actions if ``ppo.vtrace``). With
``push_every_s`` the learner also updates *during* episodes from what it
drained so far and pushes the new weights into the running agents (``POST
/load``), as an asynchronous learner does; otherwise new weights reach the
agents when the next round's episodes start them.

After every round: a checkpoint with full metadata (config, scenario set,
seed, versions, metrics; plus optimizer/RNG state), ``progress.csv`` and
``curves.png`` (reward, score, losses, KL), and ``state.json``, from which
a killed run resumes at the next round. Every ``curriculum.every`` rounds,
Genet's search (:mod:`netlab.learning.curriculum`) adds the configuration
with the largest gap-to-baseline to the training mix.

K: ``parallel: auto`` measures it first (:func:`~netlab.learning.labs.
measure_parallel`: the largest K whose episodes all keep their fidelity
reports passing); episodes that are not faithful are left out of the
update and counted.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endpoints.agent_rtc import NEEDS_CAPACITY, REWARDS, STEP_MS
from labcore.jsonfile import write_json_atomic
from labcore.units import parse_duration
from netlab.errors import NetlabError
from netlab.learning.curriculum import EmulatedGap, SimGap, TrainingMix, search
from netlab.learning.exclusions import Counts
from netlab.learning.labs import (
    EpisodePool,
    EpisodeResult,
    EpisodeSpec,
    LabPool,
    fidelity_passes,
    measure_parallel,
)
from netlab.learning.scenario_set import EnvConfig, ParamSpace, env_trace, load_set, offered_before
from netlab.scenario.loader import load_yaml_file

STATE_FILE = "state.json"
PROGRESS_FILE = "progress.csv"
MAX_FAILED_ROUNDS = 3
CURVES_FILE = "curves.png"
PROGRESS_COLUMNS = ("round", "episodes", "faithful", "unfaithful", "failed", "left_out", "steps",
                    "mean_score", "mean_reward",
                    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac",
                    "explained_variance", "std", "late_fraction", "mean_rho", "agent_misses",
                    "parallel", "wall_s", "curriculum_added")


@dataclass
class CurriculumConfig:
    every: int = 0  # rounds between searches; 0: off
    mode: str = "emulation"  # or "sim"
    k: int = 2
    init_points: int = 2
    iterations: int = 3
    weight: float = 0.3
    space: dict[str, Any] = field(default_factory=dict)
    sim_baseline: str | float = "gcc"  # sim only: gcc, a checkpoint path or a fixed bit/s


@dataclass
class FinetuneConfig:
    """The YAML file, typed (``netlab finetune --help`` lists the keys)."""

    source: Path
    start: Path
    out: Path
    name: str = "finetune"
    seed: int = 0
    rounds: int = 10
    episodes: int = 4  # per round (per update)
    parallel: int | str = 2  # or "auto"
    parallel_candidates: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    deadline_s: float = 0.02
    backend: str | None = None
    push_every_s: float | None = None
    require_faithful: bool = True
    reward: str = "onl"  # endpoints.agent_rtc.REWARDS, recomputed from the logged states
    train: dict[str, Any] = field(default_factory=dict)
    held_out: dict[str, Any] = field(default_factory=dict)
    ppo: dict[str, Any] = field(default_factory=dict)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    raw: dict[str, Any] = field(default_factory=dict)

    def train_envs(self) -> list[EnvConfig]:
        return load_set(self.train, self.source.parent, f"{self.source}: train")

    def held_out_envs(self) -> list[EnvConfig]:
        return load_set(self.held_out, self.source.parent, f"{self.source}: held_out")


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_duration(str(value))
    except (ValueError, NetlabError) as exc:
        raise NetlabError(f"{where}: {value!r} is not a duration", where=where,
                          fix="write e.g. 20ms or 2s") from exc


def load_config(path: Path, overrides: Mapping[str, Any] | None = None, *,
                check_start: bool = True) -> FinetuneConfig:
    """Read a finetune YAML; relative paths are relative to the file.
    ``check_start=False``: the start checkpoint may not exist yet (a stage that
    trains it reads the config's set, reward and PPO first)."""
    data = load_yaml_file(path, "finetune config",
                          "give a readable YAML file (see configs/finetune-*.yaml)")
    if not isinstance(data, dict):
        raise NetlabError("finetune config must be a mapping", where=str(path),
                          fix="see configs/finetune-tiny.yaml")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {"name", "seed", "start", "out", "rounds", "episodes", "parallel",
             "parallel_candidates", "deadline", "backend", "push_every", "require_faithful",
             "train", "held_out", "ppo", "curriculum", "reward"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise NetlabError(f"unknown keys {unknown}", where=str(path),
                          fix=f"use only {sorted(known)}")
    base = path.parent

    def resolve(value: Any, key: str) -> Path:
        if value is None:
            raise NetlabError(f"'{key}' is required", where=f"{path}: {key}",
                              fix="give a path relative to the config file")
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    start = resolve(data.get("start"), "start")
    if check_start and not start.is_file():
        raise NetlabError(f"start checkpoint {start} does not exist", where=f"{path}: start",
                          fix="give a checkpoint the agent loads (models/*.pth)")
    curriculum = dict(data.get("curriculum") or {})
    try:
        cur = CurriculumConfig(**curriculum)
    except TypeError as exc:
        raise NetlabError(f"curriculum: {exc}", where=f"{path}: curriculum",
                          fix="keys: every, mode, k, init_points, iterations, weight, space, "
                              "sim_baseline") from None
    if cur.mode not in ("emulation", "sim"):
        raise NetlabError(f"curriculum.mode {cur.mode!r}", where=f"{path}: curriculum.mode",
                          fix="use emulation or sim")
    parallel = data.get("parallel", 2)
    if not (parallel == "auto" or (isinstance(parallel, int) and parallel >= 1)):
        raise NetlabError(f"parallel {parallel!r}", where=f"{path}: parallel",
                          fix="give a number of labs >= 1, or auto")
    push = data.get("push_every")
    reward = str(data.get("reward", "onl"))
    if reward not in REWARDS:
        raise NetlabError(f"reward {reward!r} is not a known reward", where=f"{path}: reward",
                          fix=f"use one of {', '.join(sorted(REWARDS))}")
    if reward in NEEDS_CAPACITY and push is not None:
        raise NetlabError(f"reward {reward!r} with push_every: a mid-episode update does not "
                          "know the running episodes' trace clocks", where=f"{path}: push_every",
                          fix="leave push_every out (updates between rounds), or use reward "
                              "onl or qoe")
    return FinetuneConfig(
        source=path, start=start, out=resolve(data.get("out", f"runs/{path.stem}"), "out"),
        name=str(data.get("name", path.stem)), seed=int(data.get("seed", 0)),
        rounds=int(data.get("rounds", 10)), episodes=int(data.get("episodes", 4)),
        parallel=parallel, parallel_candidates=[int(k) for k in data.get(
            "parallel_candidates", [1, 2, 3, 4])],
        deadline_s=_seconds(data.get("deadline", "20ms"), f"{path}: deadline"),
        backend=data.get("backend"),
        push_every_s=None if push is None else _seconds(push, f"{path}: push_every"),
        require_faithful=bool(data.get("require_faithful", True)), reward=reward,
        train=dict(data.get("train") or {}), held_out=dict(data.get("held_out") or {}),
        ppo=dict(data.get("ppo") or {}), curriculum=cur, raw=data)


def lab_prefix(pid: int | None = None) -> str:
    """``ft`` + 4 base-36 digits of this process (or ``pid``): a resumed run never
    meets the labs of the run it replaces (those tear down on their own)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    n, tag = os.getpid() if pid is None else pid, ""
    for _ in range(4):
        n, r = divmod(n, 36)
        tag = digits[r] + tag
    return f"ft{tag}"


@dataclass
class Finetuner:
    config: FinetuneConfig
    log: Callable[[str], None] = print
    round: int = 0
    parallel: int = 1
    mix: TrainingMix | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    #: (K, lab prefix) -> the pool a round runs on; None: local labs (LabPool)
    make_pool: Callable[[int, str], EpisodePool] | None = None

    @property
    def out(self) -> Path:
        return self.config.out

    def _learner(self) -> Any:
        from netlab.learning.ppo import PPOConfig, PPOLearner

        ppo = {"seed": self.config.seed, **self.config.ppo}
        try:
            return PPOLearner(str(self.config.start), PPOConfig(**ppo))
        except TypeError as exc:
            raise NetlabError(f"ppo: {exc}", where=f"{self.config.source}: ppo",
                              fix="see netlab.learning.ppo.PPOConfig for the keys") from None

    def _state(self) -> dict[str, Any] | None:
        path = self.out / STATE_FILE
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def _save_state(self, checkpoint: Path) -> None:
        assert self.mix is not None
        state = {"round": self.round, "checkpoint": str(checkpoint), "parallel": self.parallel,
                 "mix": self.mix.to_json(), "config": str(self.config.source),
                 "saved": time.time()}
        write_json_atomic(self.out / STATE_FILE, state, indent=1)

    def _metadata(self, metrics: dict[str, Any]) -> dict[str, Any]:
        assert self.mix is not None
        return {"finetune": {"name": self.config.name, "round": self.round,
                             "config": self.config.raw, "config_file": str(self.config.source),
                             "start": str(self.config.start), "seed": self.config.seed,
                             "scenario_set": {"train": self.config.train,
                                              "curriculum": self.mix.to_json()},
                             "parallel": self.parallel, "metrics": metrics}}

    def measure_k(self, envs: list[EnvConfig]) -> int:
        duration = min(10.0, min(e.duration_s for e in envs))

        def specs(k: int) -> list[EpisodeSpec]:
            return [EpisodeSpec(EnvConfig(**{**envs[i % len(envs)].as_dict(),
                                             "duration_s": duration}),
                                str(self.out / "measure-k" / f"k{k}-{i}"), estimator="policy",
                                checkpoint=str(self.config.start), explore=True,
                                deadline_s=self.config.deadline_s, backend=self.config.backend)
                    for i in range(k)]

        def report(k: int, results: list[EpisodeResult]) -> None:
            self.log(f"K={k}: faithful {sum(bool(r.faithful) for r in results)}/{len(results)}"
                     f", misses {[(r.agent or {}).get('misses') for r in results]}, errors "
                     f"{sum(r.error is not None for r in results)}")
            with open(self.out / "measure-k.jsonl", "a") as handle:
                handle.write(json.dumps({"k": k, "passes": fidelity_passes(results),
                                         "episodes": [r.to_json() for r in results]}) + "\n")

        return measure_parallel(self.config.parallel_candidates, specs, report,
                                lab_prefix=lab_prefix())

    def _clear_previous_run(self) -> None:
        """A fresh start removes what an earlier run left in ``out`` (episodes,
        checkpoints, curves), so no directory mixes two runs."""
        for name in ("episodes", "measure-k", "checkpoints", "curriculum"):
            shutil.rmtree(self.out / name, ignore_errors=True)
        for name in (PROGRESS_FILE, CURVES_FILE, "measure-k.jsonl", STATE_FILE):
            (self.out / name).unlink(missing_ok=True)

    def run(self, *, resume: bool = True) -> Path:
        """Run (or resume) every round; returns the last checkpoint."""
        from netlab.learning.rollout import Rollout, rollout_from_transitions

        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        learner = self._learner()
        base_envs = cfg.train_envs()
        self.mix = TrainingMix(base_envs)
        state = self._state() if resume else None
        checkpoint = cfg.start
        if state is not None:
            checkpoint = Path(state["checkpoint"])
            learner.load_state(checkpoint)
            self.round = int(state["round"])
            self.parallel = int(state["parallel"])
            self.mix.load_added(state.get("mix", []))
            self.history = _read_progress(self.out / PROGRESS_FILE)
            self.log(f"resuming after round {self.round} from {checkpoint}")
        else:
            self._clear_previous_run()
            self.parallel = (self.measure_k(base_envs) if cfg.parallel == "auto"
                             else int(cfg.parallel))
            self.log(f"K = {self.parallel} labs in parallel")
            checkpoint = learner.save(self.out / "checkpoints" / "round-0000.pth",
                                      self._metadata({}))
            self._save_state(checkpoint)
        prefix = lab_prefix()
        failed_rounds = 0
        while self.round < cfg.rounds:
            t0 = time.monotonic()
            rng = random.Random(cfg.seed * 100_003 + self.round)
            envs = self.mix.sample(rng, cfg.episodes)
            directory = self.out / "episodes" / f"round-{self.round + 1:04d}"
            specs = [EpisodeSpec(env, str(directory / f"e{i:02d}"), estimator="policy",
                                 checkpoint=str(checkpoint), explore=True,
                                 deadline_s=cfg.deadline_s, backend=cfg.backend)
                     for i, env in enumerate(envs)]
            pushed: list[dict[str, float]] = []
            tick = self._pusher(learner, pushed, directory) if cfg.push_every_s else None
            pool = (self.make_pool(self.parallel, prefix) if self.make_pool is not None
                    else LabPool(self.parallel, lab_prefix=prefix))
            results = pool.run(specs, tick)
            counts = Counts()
            usable = [r for r in results if counts.count(
                r, cfg.require_faithful,
                enough=r.transitions is not None and len(r.transitions) > 2)]
            for r in results:
                if r.error is not None:
                    self.log(f"[yellow]episode failed[/yellow]: {r.error[:300]}")
            used_parallel = self.parallel
            self.parallel, note = next_parallel(self.parallel, results)
            if note:
                self.log(note)
            if not usable:
                failed_rounds += 1
                if failed_rounds >= MAX_FAILED_ROUNDS:
                    raise NetlabError(f"round {self.round + 1}: no usable episode in "
                                      f"{failed_rounds} tries ({len(results)} ran each)",
                                      where=str(directory),
                                      fix="see episode.out and the runs' fidelity verdicts")
                self.log(f"round {self.round + 1}: no usable episode, running it again")
                continue
            failed_rounds = 0
            parts = [rollout_from_transitions(r.transitions, learner.to_action,
                                              deadline_ns=int(cfg.deadline_s * 1e9),
                                              reward=REWARDS[cfg.reward],
                                              capacity=self._offered(r))
                     for r in usable if r.transitions is not None]
            stats = learner.update(Rollout.concat(parts))
            self.round += 1
            scores = [r.score for r in usable if r.score is not None]
            row: dict[str, Any] = {
                "round": self.round, "episodes": len(results),
                "faithful": sum(bool(r.faithful) for r in results),
                "unfaithful": counts.unfaithful, "failed": counts.failed,
                "left_out": counts.left_out(cfg.require_faithful),
                "mean_score": statistics.fmean(scores) if scores else math.nan,
                "agent_misses": sum(int((r.agent or {}).get("misses") or 0) for r in results),
                "parallel": used_parallel, "curriculum_added": "", **stats}
            added = self._curriculum(learner, checkpoint)
            if added is not None:
                row["curriculum_added"] = added.label
            row["wall_s"] = round(time.monotonic() - t0, 1)
            checkpoint = learner.save(self.out / "checkpoints" / f"round-{self.round:04d}.pth",
                                      self._metadata(row))
            shutil.copyfile(checkpoint, self.out / "checkpoints" / "latest.pth")
            self.history.append(row)
            _write_progress(self.out / PROGRESS_FILE, self.history)
            plot_curves(self.history, self.out / CURVES_FILE)
            self._save_state(checkpoint)
            self.log(f"round {self.round}/{cfg.rounds}: score {row['mean_score']:.2f}, reward "
                     f"{stats['mean_reward']:.3f}, KL {stats['approx_kl']:.4f}, "
                     f"faithful {row['faithful']}/{len(results)} (left out: "
                     f"{row['left_out']}), {row['wall_s']} s")
        return checkpoint

    def _offered(self, result: EpisodeResult) -> Callable[[int], float] | None:
        """What the episode's link offered before each observation, for a capacity
        reward: its environment's trace on its run's clock."""
        if self.config.reward not in NEEDS_CAPACITY:
            return None
        assert isinstance(result.spec.env, EnvConfig)  # fine-tuning runs environments
        if result.trace_epoch_ns is None:
            raise NetlabError(f"episode {result.spec.directory} has no trace clock",
                              where="results.json: clock",
                              fix="rerun the round (its labs are from an older netlab)")
        return offered_before(env_trace(result.spec.env), result.trace_epoch_ns,
                              STEP_MS / 1e3)

    def _pusher(self, learner: Any, pushed: list[dict[str, float]],
                directory: Path) -> Callable[[LabPool], None]:
        """A LabPool tick: every ``push_every_s``, update on what the running agents
        hold and hot-load the new weights into them."""
        from netlab.learning.rollout import Rollout, rollout_from_transitions

        assert self.config.push_every_s is not None
        every = self.config.push_every_s
        last = [time.monotonic()]

        def tick(pool: LabPool) -> None:
            if time.monotonic() - last[0] < every:
                return
            last[0] = time.monotonic()
            batches = pool.take_running()
            parts = []
            for rows in batches:
                try:
                    parts.append(rollout_from_transitions(
                        rows, learner.to_action,
                        deadline_ns=int(self.config.deadline_s * 1e9),
                        reward=REWARDS[self.config.reward]))
                except ValueError:
                    continue
            if not parts:
                return
            stats = learner.update(Rollout.concat(parts))
            path = learner.save(directory / f"push-{len(pushed) + 1:03d}.pth", resumable=False)
            stats["agents_loaded"] = float(pool.push(path))
            pushed.append(stats)

        return tick

    def _curriculum(self, learner: Any, checkpoint: Path) -> EnvConfig | None:
        cur = self.config.curriculum
        if cur.every <= 0 or self.round % cur.every != 0:
            return None
        assert self.mix is not None
        current = learner.save(self.out / "curriculum" / f"policy-{self.round:04d}.pth",
                               resumable=False)
        durations = [e.duration_s for e in self.mix.base]
        space = ParamSpace.from_config(cur.space, statistics.fmean(durations),
                                       f"{self.config.source}: curriculum.space")
        gap: Callable[[EnvConfig], float]
        if cur.mode == "sim":
            baseline: Path | float | str = (
                float(cur.sim_baseline) if isinstance(cur.sim_baseline, int | float)
                else "gcc" if cur.sim_baseline == "gcc" else Path(str(cur.sim_baseline)))
            gap = SimGap(current, baseline, k=cur.k)
        else:
            gap = EmulatedGap(current, self.out / "curriculum" / f"round-{self.round:04d}",
                              k=cur.k, parallel=self.parallel, deadline_s=self.config.deadline_s,
                              backend=self.config.backend, lab_prefix=lab_prefix()[:5] + "c",
                              require_faithful=self.config.require_faithful,
                              pool=(self.make_pool(self.parallel, lab_prefix()[:5] + "c")
                                    if self.make_pool is not None else None))
        result = search(gap, space, init_points=cur.init_points, iterations=cur.iterations,
                        seed=self.config.seed * 1000 + self.round)
        record = result.to_json()
        if isinstance(gap, EmulatedGap):  # its episodes, per controller: see exclusions
            record["episodes"] = {name: c.as_dict(gap.require_faithful)
                                  for name, c in gap.counts.items()}
        (self.out / "curriculum" / f"search-{self.round:04d}.json").write_text(
            json.dumps(record, indent=1))
        self.mix.add(result.best, cur.weight)
        self.log(f"curriculum: added {result.best.label} (gap {result.best_gap:.2f}) with "
                 f"weight {cur.weight}")
        return result.best


def _write_progress(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(PROGRESS_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _read_progress(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {}
            for key, value in raw.items():
                try:
                    row[key] = int(value)
                except (TypeError, ValueError):
                    try:
                        row[key] = float(value) if value not in ("", None) else ""
                    except ValueError:
                        row[key] = value
            rows.append(row)
    return rows


def next_parallel(parallel: int, results: Sequence[EpisodeResult]) -> tuple[int, str]:
    """K for the next round, and why it changed (or was kept despite unfaithful runs).

    K drops only when an unfaithful run's own report blamed the machine (its
    CPUs busy, steal, throttling): a link that missed a trace it cannot follow
    says nothing about how many labs the machine holds."""
    unfaithful = [r for r in results if r.error is None and not r.faithful]
    loaded = [r for r in unfaithful if r.machine_causes]
    if loaded and parallel > 1:
        return parallel - 1, (f"[yellow]{len(loaded)} episode(s) not faithful, the machine "
                              f"blamed[/yellow] ({loaded[0].machine_causes[0]}): K lowered "
                              f"to {parallel - 1}")
    if unfaithful:
        return parallel, (f"[yellow]{len(unfaithful)} episode(s) not faithful[/yellow], "
                          f"{'the machine blamed' if loaded else 'the machine not blamed'}: "
                          f"K stays {parallel}")
    return parallel, ""


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Score, reward, losses and KL per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("mean_score", "episode score (0–70)"), ("mean_reward", "mean reward"),
              ("policy_loss", "policy loss"), ("value_loss", "value loss"),
              ("entropy", "entropy"), ("approx_kl", "approx. KL"))
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.5))
    rounds = [float(r["round"]) for r in rows]
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        values = [float(r[key]) if isinstance(r.get(key), int | float) else math.nan
                  for r in rows]
        ax.plot(rounds, values, marker="o", markersize=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("round", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
