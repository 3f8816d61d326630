"""The headline experiment: does fine-tuning in labs beat the simulator and GCC?

One command per stage (``netlab headline STAGE configs/headline.yaml``), each
writing under the config's ``out``:

* ``lock``: record the test set's SHA-256 (and its traces') before any tuning;
* ``start``: PPO in the simulator from scratch on the training distribution
  (the finetune config's ``train`` set, cut into the same windows the labs
  run), the ``start`` arm;
* ``sim SEED``: from ``start``, PPO in the simulator with the finetune
  config's own PPO, episodes per update and episode length. After as many
  updates as the labs get (``rounds``) it saves ``sim_tuned``: the same
  samples as ``emu_tuned``. It goes on to ``sim.converge_updates`` and saves
  ``sim_converged``, the start of ``emu_from_sim``. The learning curve sits
  beside it, to set budgets from;
* ``emu SEED`` / ``emu-from-sim SEED``: ``netlab finetune`` from ``start``
  or from that seed's ``sim_converged``;
* ``eval``: every arm's checkpoints and GCC on the locked test set, in labs
  (``netlab eval``), in one evaluation;
* ``report``: ``headline.json``, with paired contrasts whose 95 % intervals
  come from a nested bootstrap (:mod:`netlab.learning.headline_stats`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from netlab.errors import NetlabError
from netlab.scenario.loader import load_yaml_file

ARMS = ("start", "sim_tuned", "emu_tuned", "emu_from_sim", "gcc")
#: The contrasts headline.json reports, as (a, b): a − b.
CONTRASTS = (("emu_tuned", "gcc"), ("emu_tuned", "sim_tuned"), ("emu_tuned", "start"),
             ("emu_from_sim", "sim_tuned"), ("sim_tuned", "start"))
LOCK_FILE = "test-set.lock.json"


@dataclass(frozen=True)
class HeadlineConfig:
    source: Path
    out: Path
    finetune: Path
    test_set: Path
    result: Path
    seeds: tuple[int, ...] = (1, 2, 3)
    start_minutes: float = 5.0
    start_seed: int = 0
    #: states per observation of the start policy: 1 is OpenNetLab's rtc-onl4,
    #: more an rtc-hist policy (endpoints.agent_rtc.RtcContract)
    start_history: int = 1
    #: PPO settings of the start's pretraining over netlab.learning.pretrain.PRETRAIN_PPO
    start_ppo: Mapping[str, Any] = field(default_factory=dict)
    converge_updates: int = 30
    eval_parallel: int = 3
    eval_repeat: int = 1
    eval_deadline_s: float = 0.02
    metric: str = "capacity_score"
    bootstrap: int = 10_000

    @property
    def lock_path(self) -> Path:
        return self.test_set.with_name(LOCK_FILE)

    def checkpoint(self, arm: str, seed: int | None = None) -> Path:
        """Where an arm's checkpoint lives (``seed`` for the tuned arms)."""
        if arm == "start":
            return self.out / "start.pth"
        if arm in ("sim_tuned", "sim_converged"):
            return self.out / f"sim-s{seed}" / f"{arm}.pth"
        if arm in ("emu_tuned", "emu_from_sim"):
            return self.out / f"{arm}-s{seed}" / "checkpoints" / "latest.pth"
        raise ValueError(arm)


KNOWN_KEYS = {"out", "finetune", "test_set", "result", "seeds", "start", "sim", "eval",
              "metric", "bootstrap"}


def load_headline(path: Path) -> HeadlineConfig:
    """Read ``configs/headline.yaml``; paths are relative to it."""
    data = load_yaml_file(path, "headline config", "give a readable YAML file "
                                                   "(see configs/headline.yaml)")
    if not isinstance(data, dict):
        raise NetlabError("headline config must be a mapping", where=str(path),
                          fix="see configs/headline.yaml")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise NetlabError(f"unknown keys {unknown}", where=str(path),
                          fix=f"use only {sorted(KNOWN_KEYS)}")

    def resolve(key: str) -> Path:
        value = data.get(key)
        if not isinstance(value, str):
            raise NetlabError(f"'{key}' is required", where=f"{path}: {key}",
                              fix="give a path relative to the config file")
        return (path.parent / value).resolve()

    start = dict(data.get("start") or {})
    from netlab.learning.ppo import PPOConfig

    ppo_keys = {f.name for f in fields(PPOConfig)}
    if not isinstance(start.get("ppo") or {}, dict) or set(start.get("ppo") or {}) - ppo_keys:
        raise NetlabError(f"start.ppo {start.get('ppo')!r}", where=f"{path}: start.ppo",
                          fix=f"a mapping of PPO settings: {sorted(ppo_keys)}")
    sim = dict(data.get("sim") or {})
    evaluation = dict(data.get("eval") or {})
    seeds = tuple(int(s) for s in data.get("seeds", (1, 2, 3)))
    if len(seeds) < 1 or len(set(seeds)) != len(seeds):
        raise NetlabError(f"seeds {list(seeds)}", where=f"{path}: seeds",
                          fix="give distinct training seeds, e.g. [1, 2, 3]")
    return HeadlineConfig(
        source=path.resolve(), out=resolve("out"), finetune=resolve("finetune"),
        test_set=resolve("test_set"), result=resolve("result"), seeds=seeds,
        start_minutes=float(start.get("minutes", 5.0)), start_seed=int(start.get("seed", 0)),
        start_history=int(start.get("history", 1)), start_ppo=dict(start.get("ppo") or {}),
        converge_updates=int(sim.get("converge_updates", 30)),
        eval_parallel=int(evaluation.get("parallel", 3)),
        eval_repeat=int(evaluation.get("repeat", 1)),
        eval_deadline_s=float(evaluation.get("deadline_ms", 20)) / 1e3,
        metric=str(data.get("metric", "capacity_score")),
        bootstrap=int(data.get("bootstrap", 10_000)))


# -- lock ----------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_set_fingerprint(config: HeadlineConfig) -> dict[str, Any]:
    """What the lock pins: the set file's hash and each scenario with its trace's hash."""
    from netlab.learning.eval_inputs import resolve
    from shaping.traces.corpus import resolve as corpus_path

    scenarios = resolve([str(config.test_set)])
    traces: dict[str, str] = {}
    for scenario in scenarios:
        trace = getattr(scenario.env, "trace", None)
        if trace is not None and trace not in traces:
            file = Path(trace) if Path(trace).is_file() else corpus_path(trace)
            traces[trace] = _sha256(file)
    return {"test_set": config.test_set.name, "sha256": _sha256(config.test_set),
            "scenarios": [s.name for s in scenarios], "traces": traces}


def _unchanged(held: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> bool:
    return {k: held.get(k) for k in fingerprint} == dict(fingerprint)


def lock(config: HeadlineConfig) -> Path:
    """Write the lock beside the test set; an existing one is only checked."""
    path = config.lock_path
    if path.is_file():
        check_lock(config)
        return path
    path.write_text(json.dumps({**test_set_fingerprint(config), "locked_at": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1) + "\n")
    return path


def check_lock(config: HeadlineConfig) -> dict[str, Any]:
    """The lock, after checking the test set still matches it."""
    path = config.lock_path
    if not path.is_file():
        raise NetlabError("the test set was never locked", where=str(path),
                          fix="run `netlab headline lock` before any tuning")
    held: dict[str, Any] = json.loads(path.read_text())
    if not _unchanged(held, test_set_fingerprint(config)):
        raise NetlabError("the test set changed since it was locked", where=str(path),
                          fix="a locked test set is not edited: restore it (git checkout), "
                              "or start a new headline with a new set")
    return held


# -- training stages -------------------------------------------------------------


def _finetune(config: HeadlineConfig, overrides: Mapping[str, Any] | None = None, *,
              check_start: bool = True) -> Any:
    from netlab.learning.finetune import load_config

    return load_config(config.finetune, {"start": str(config.checkpoint("start")),
                                         **(overrides or {})}, check_start=check_start)


def _episode_s(tune: Any) -> float:
    return float(tune.train_envs()[0].duration_s)


def _train_windows(config: HeadlineConfig) -> tuple[Any, list[Any], Any]:
    """(the finetune config, the training windows as traces, the link shape under them)."""
    from labcore.units import QueueLimit
    from netlab.learning.scenario_set import env_trace
    from shaping.spec import LinkShape

    tune = _finetune(config, check_start=False)
    envs = tune.train_envs()
    queues = {round(e.queue_pkt) for e in envs}
    if len(queues) != 1 or any(e.loss_pct for e in envs):
        raise NetlabError("the simulator arms need one queue size and no random loss over "
                          "the training set", where=f"{config.finetune}: train",
                          fix="use one shape (queue_pkt, no loss_pct) for the training windows")
    return tune, [env_trace(e) for e in envs], LinkShape(queue=QueueLimit(packets=queues.pop()))


def run_start(config: HeadlineConfig, report: Callable[[dict[str, float]], None] | None = None
              ) -> Path:
    from netlab.learning.pretrain import PRETRAIN_PPO, PretrainConfig, pretrain

    tune, traces, link = _train_windows(config)
    settings = PretrainConfig(minutes=config.start_minutes, seed=config.start_seed,
                              episode_s=_episode_s(tune), reward=tune.reward,
                              history=config.start_history,
                              ppo=replace(PRETRAIN_PPO, **config.start_ppo))
    return pretrain(settings, config.checkpoint("start"), report=report, link=link,
                    traces=traces).checkpoint


def run_sim(config: HeadlineConfig, seed: int,
            report: Callable[[dict[str, float]], None] | None = None) -> Path:
    """``sim_tuned`` (the labs' sample count) and ``sim_converged`` for one seed."""
    from netlab.learning.ppo import PPOConfig
    from netlab.learning.pretrain import PretrainConfig, pretrain
    from netlab.learning.sim.core import LAB_POLL_S

    tune, traces, link = _train_windows(config)
    episode_s = _episode_s(tune)
    steps_per_episode = round(episode_s / LAB_POLL_S)
    settings = PretrainConfig(updates=max(config.converge_updates, tune.rounds), seed=seed,
                              episode_s=episode_s, reward=tune.reward,
                              batch_steps=tune.episodes * steps_per_episode,
                              start=str(config.checkpoint("start")), ppo=PPOConfig(**tune.ppo))
    return pretrain(settings, config.checkpoint("sim_converged", seed), report=report,
                    link=link, traces=traces,
                    snapshots={tune.rounds: config.checkpoint("sim_tuned", seed)}).checkpoint


def run_emu(config: HeadlineConfig, seed: int, *, from_sim: bool,
            log: Callable[[str], None] = print) -> Path:
    from netlab.learning.finetune import Finetuner

    arm = "emu_from_sim" if from_sim else "emu_tuned"
    start = config.checkpoint("sim_converged" if from_sim else "start", seed)
    if not start.is_file():
        raise NetlabError(f"{start} does not exist", where=f"netlab headline {arm}",
                          fix="run the stage it starts from first (docs/finetune.md)")
    tune = _finetune(config, {"seed": seed, "start": str(start),
                              "out": str(config.out / f"{arm}-s{seed}")})
    return Finetuner(tune, log=log).run(resume=True)


# -- evaluation ------------------------------------------------------------------


def eval_controllers(config: HeadlineConfig) -> dict[str, Path]:
    """Every arm's checkpoints (``arm-sSEED``) for one evaluation: GCC runs once per
    scenario, and the runs interleave the arms (a slow spell falls on all of them)."""
    controllers = {"start": config.checkpoint("start")}
    for arm in ("sim_tuned", "emu_tuned", "emu_from_sim"):
        for seed in config.seeds:
            controllers[f"{arm}-s{seed}"] = config.checkpoint(arm, seed)
    return controllers


def run_eval(config: HeadlineConfig) -> Path:
    from netlab.learning.eval_inputs import resolve
    from netlab.learning.evaluate import evaluate

    check_lock(config)
    controllers = eval_controllers(config)
    missing = [str(p) for p in controllers.values() if not p.is_file()]
    if missing:
        raise NetlabError(f"no checkpoint at {', '.join(missing)}",
                          where="netlab headline eval",
                          fix="run the training stages first (docs/finetune.md)")
    out = config.out / "eval"
    evaluate(controllers, resolve([str(config.test_set)]), out, baseline="gcc",
             repeat=config.eval_repeat, parallel=config.eval_parallel,
             deadline_s=config.eval_deadline_s, lab_prefix="hl")
    return out / "eval.json"


# -- report ----------------------------------------------------------------------


def _arm_of(controller: str) -> tuple[str, int | None]:
    arm, sep, seed = controller.rpartition("-s")
    if sep and seed.isdigit() and arm in ARMS:
        return arm, int(seed)
    return controller, None


def collect(evals: Sequence[Mapping[str, Any]], metric: str, scenarios: Sequence[str]
            ) -> dict[str, dict[str, list[float | None]]]:
    """arm -> seed (``"-"`` for untrained arms) -> the metric per test scenario;
    an arm evaluated in several groups (GCC) gets the mean of its groups."""
    index = {name: i for i, name in enumerate(scenarios)}
    sums: dict[str, dict[str, list[list[float]]]] = {}
    for data in evals:
        for row in data["scenarios"]:
            i = index.get(row["name"])
            if i is None:
                raise NetlabError(f"scenario {row['name']!r} is not in the locked test set",
                                  where="netlab headline report",
                                  fix="evaluate on the locked test set only")
            for controller in data["controllers"]:
                arm, seed = _arm_of(controller)
                value = (row.get(controller) or {}).get("metrics", {}).get(metric)
                cells = sums.setdefault(arm, {}).setdefault(
                    "-" if seed is None else str(seed), [[] for _ in scenarios])
                if isinstance(value, int | float):
                    cells[i].append(float(value))
    return {arm: {seed: [sum(c) / len(c) if c else None for c in cells]
                  for seed, cells in seeds.items()} for arm, seeds in sums.items()}


def _camera() -> dict[str, Any]:
    """The RTC sender's configuration every arm (and GCC) ran with."""
    from endpoints.rtc.sender_core import SenderSettings

    return {k: (str(v) if isinstance(v, Path) or hasattr(v, "value") else v)
            for k, v in asdict(SenderSettings()).items()}


def _git_commit(repo: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() or None


def build_report(config: HeadlineConfig) -> dict[str, Any]:
    from netlab.learning.headline_stats import contrast

    held = check_lock(config)
    scenarios: list[str] = list(held["scenarios"])
    paths = sorted(config.out.glob("eval*/eval.json"))
    if not paths:
        raise NetlabError(f"no evaluation under {config.out}", where="netlab headline report",
                          fix="run `netlab headline eval` first")
    evals = [json.loads(p.read_text()) for p in paths]
    arms = collect(evals, config.metric, scenarios)
    per_metric = {m: collect(evals, m, scenarios)
                  for m in ("score", "capacity_score", "utilization", "delay_p95_ms",
                            "frame_delay_p95_ms", "freezes", "loss")}
    contrasts = {}
    for a, b in CONTRASTS:
        if a in arms and b in arms:
            contrasts[f"{a}-{b}"] = contrast(arms[a], arms[b], resamples=config.bootstrap,
                                             seed=config.start_seed)
    tune = _finetune(config, check_start=False)
    return {
        "metric": config.metric,
        "seeds": list(config.seeds),
        "test_scenarios": scenarios,
        "test_set": {"file": os.path.relpath(config.test_set, config.source.parent),
                     "sha256": held["sha256"], "locked_at": held.get("locked_at")},
        "arms": arms,
        "metrics": per_metric,
        "contrasts": contrasts,
        "episodes": {p.parent.name: json.loads(p.read_text()).get("episodes", {})
                     for p in paths},
        "training": {"rounds": tune.rounds, "episodes_per_round": tune.episodes,
                     "episode_s": _episode_s(tune), "reward": tune.reward,
                     "ppo": tune.ppo, "train_windows": len(tune.train_envs()),
                     "sim_converge_updates": config.converge_updates,
                     "start_minutes": config.start_minutes,
                     "start_history": config.start_history,
                     "start_ppo": dict(config.start_ppo),
                     "lab_episodes": training_counts(config)},
        "camera": _camera(),
        "commit": _git_commit(config.source.parent),
    }


def _arm_mean(seeds: Mapping[str, Sequence[float | None]]) -> float | None:
    """Mean over scenarios of the mean over seeds (scenarios with no value skipped)."""
    per_scenario = []
    for values in zip(*seeds.values(), strict=True):
        present = [v for v in values if v is not None]
        if present:
            per_scenario.append(sum(present) / len(present))
    return sum(per_scenario) / len(per_scenario) if per_scenario else None


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """What a reader checks first: each arm's mean, then each contrast's interval."""
    metric = report["metric"]
    lines = [f"{metric}, mean over {len(report['test_scenarios'])} test scenarios "
             f"(seeds {report['seeds']}):"]
    for arm in ARMS:
        seeds = report["metrics"].get(metric, {}).get(arm)
        if seeds:
            mean = _arm_mean(seeds)
            lines.append(f"  {arm:14s} {'-' if mean is None else f'{mean:.2f}'}"
                         f"  ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})")
    for name, c in report["contrasts"].items():
        if c["mean"] is None:
            lines.append(f"  {name}: no scenario with both arms")
            continue
        verdict = ("above zero" if c["low"] > 0 else "below zero" if c["high"] < 0
                   else "includes zero")
        lines.append(f"  {name:24s} {c['mean']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] "
                     f"({verdict}; {c['scenarios']} scenarios, {c['dropped']} dropped, "
                     f"a better in {c['beats']:.0%})")
    return lines


def training_counts(config: HeadlineConfig) -> dict[str, dict[str, int]]:
    """Per lab-tuned arm and seed: the episodes it ran, kept (faithful) and left out,
    and the transitions it learned from (its ``progress.csv``)."""
    import csv

    out: dict[str, dict[str, int]] = {}
    for arm in ("emu_tuned", "emu_from_sim"):
        for seed in config.seeds:
            progress = config.out / f"{arm}-s{seed}" / "progress.csv"
            if not progress.is_file():
                continue
            rows = list(csv.DictReader(progress.open()))
            out[f"{arm}-s{seed}"] = {
                key: int(sum(float(r.get(key) or 0) for r in rows))
                for key in ("episodes", "faithful", "unfaithful", "failed", "steps")}
            out[f"{arm}-s{seed}"]["rounds"] = len(rows)
    return out


def write_report(config: HeadlineConfig) -> Path:
    report = build_report(config)
    config.result.parent.mkdir(parents=True, exist_ok=True)
    config.result.write_text(json.dumps(report, indent=1) + "\n")
    return config.result
