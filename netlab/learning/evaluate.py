"""Evaluate policies against a rule-based baseline on held-out scenarios, in labs.

Every controller (one or more policy checkpoints, and the baseline, e.g.
GCC) runs alone over the same environment, ``repeat`` times (the same trace
and seed: repeats measure the lab's run-to-run noise), K labs at a time.
Policies act deterministically (their mean action), as when served. The
score is OpenNetLab's network score of the call (0–70).

Reported: per scenario and controller the mean score with its 95 %
confidence interval (Student's t over the repeats); the aggregate (mean of
the scenario means, t interval over scenarios); per policy the paired
difference to the baseline (and between two policies) over scenarios with
its 95 % interval; and Genet's metric, the fraction of scenarios where the
policy's mean beats the baseline's. Episodes whose lab failed, or whose
fidelity report did not pass, are counted and left out.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.errors import NetlabError
from netlab.learning.labs import EpisodeResult, EpisodeSpec, LabPool
from netlab.learning.scenario_set import EnvConfig

BASELINES = ("gcc",)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of the Student-t interval; half-width NaN for n < 2."""
    from scipy import stats  # type: ignore[import-untyped]

    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan
    sem = statistics.stdev(values) / math.sqrt(n)
    return mean, float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem


@dataclass
class Interval:
    mean: float
    half_width: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Interval:
        mean, half = t_interval(values)
        return cls(mean, half, len(values))

    def as_dict(self) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 4)
        return {"mean": clean(self.mean), "ci95": clean(self.half_width),
                "low": clean(self.mean - self.half_width),
                "high": clean(self.mean + self.half_width), "n": self.n}

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        if math.isnan(self.half_width):
            return f"{self.mean:.2f}"
        return f"{self.mean:.2f} ± {self.half_width:.2f}"


@dataclass
class EvalReport:
    controllers: list[str]
    baseline: str
    envs: list[EnvConfig]
    scores: dict[str, dict[int, list[float]]]  # controller -> env index -> scores
    dropped: dict[str, int] = field(default_factory=dict)
    unfaithful: int = 0

    def scenario(self, name: str, index: int) -> Interval:
        return Interval.of(self.scores[name].get(index, []))

    def common_envs(self, *names: str) -> list[int]:
        return [i for i in range(len(self.envs))
                if all(self.scores[n].get(i) for n in names)]

    def aggregate(self, name: str) -> Interval:
        means = [statistics.fmean(self.scores[name][i]) for i in self.common_envs(name)]
        return Interval.of(means)

    def difference(self, a: str, b: str) -> Interval:
        """Paired over scenarios: mean score of ``a`` − mean score of ``b``."""
        diffs = [statistics.fmean(self.scores[a][i]) - statistics.fmean(self.scores[b][i])
                 for i in self.common_envs(a, b)]
        return Interval.of(diffs)

    def beats(self, a: str, b: str) -> float:
        """Genet's metric: the fraction of scenarios where ``a``'s mean beats ``b``'s."""
        common = self.common_envs(a, b)
        if not common:
            return math.nan
        wins = sum(statistics.fmean(self.scores[a][i]) > statistics.fmean(self.scores[b][i])
                   for i in common)
        return wins / len(common)

    def policies(self) -> list[str]:
        return [c for c in self.controllers if c != self.baseline]

    def as_dict(self) -> dict[str, Any]:
        policies = self.policies()
        out: dict[str, Any] = {
            "baseline": self.baseline, "controllers": self.controllers,
            "episodes_dropped": self.dropped, "episodes_unfaithful": self.unfaithful,
            "aggregate": {c: self.aggregate(c).as_dict() for c in self.controllers},
            "vs_baseline": {p: {"difference": self.difference(p, self.baseline).as_dict(),
                                "fraction_beats_baseline": self.beats(p, self.baseline)}
                            for p in policies},
            "scenarios": [{"env": env.as_dict(), "label": env.label,
                           **{c: {**self.scenario(c, i).as_dict(),
                                  "scores": self.scores[c].get(i, [])}
                              for c in self.controllers}}
                          for i, env in enumerate(self.envs)],
        }
        if len(policies) >= 2:
            out["between_policies"] = {
                f"{a} - {b}": {"difference": self.difference(a, b).as_dict(),
                               "fraction_a_beats_b": self.beats(a, b)}
                for i, a in enumerate(policies) for b in policies[i + 1:]}
        return out


def episode_specs(controllers: Mapping[str, str | None], envs: Sequence[EnvConfig], repeat: int,
                  out_dir: Path, *, deadline_s: float, backend: str | None
                  ) -> list[tuple[str, int, EpisodeSpec]]:
    """(controller, env index, spec) for every run; repeats interleave so a
    slow period of the machine does not fall on one controller."""
    runs = []
    for r in range(repeat):
        for i, env in enumerate(envs):
            for name, checkpoint in controllers.items():
                estimator = "policy" if checkpoint is not None else name
                runs.append((name, i, EpisodeSpec(
                    env, str(out_dir / "episodes" / f"{name}-s{i:03d}-r{r}"),
                    estimator=estimator, checkpoint=checkpoint, explore=False,
                    deadline_s=deadline_s, backend=backend)))
    return runs


def evaluate(policies: Mapping[str, str | Path], envs: Sequence[EnvConfig], out_dir: Path, *,
             baseline: str = "gcc", repeat: int = 3, parallel: int = 2,
             deadline_s: float = 0.02, backend: str | None = None, lab_prefix: str = "fte",
             require_faithful: bool = True) -> EvalReport:
    """Run every policy and the baseline over ``envs``; write eval.json/csv/png."""
    if baseline not in BASELINES:
        raise NetlabError(f"unknown baseline {baseline!r}", where="--baseline",
                          fix=f"use one of {', '.join(BASELINES)}")
    if not envs:
        raise NetlabError("no scenarios to evaluate", where="--scenarios",
                          fix="give a set with at least one environment")
    for name, path in policies.items():
        if not Path(path).is_file():
            raise NetlabError(f"policy checkpoint {path} does not exist", where=f"--policy {name}",
                              fix="give the path of a .pth file")
    controllers: dict[str, str | None] = {n: str(Path(p).resolve()) for n, p in policies.items()}
    controllers[baseline] = None
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = episode_specs(controllers, envs, repeat, out_dir, deadline_s=deadline_s,
                         backend=backend)
    results = LabPool(parallel, lab_prefix=lab_prefix).run([s for _, _, s in runs])
    report = EvalReport(list(controllers), baseline, list(envs),
                        {c: {} for c in controllers}, {c: 0 for c in controllers})
    rows = []
    for (name, index, _), result in zip(runs, results, strict=True):
        usable = result.error is None and result.score is not None and (
            result.faithful or not require_faithful)
        if result.error is None and not result.faithful:
            report.unfaithful += 1
        if usable:
            assert result.score is not None
            report.scores[name].setdefault(index, []).append(result.score)
        else:
            report.dropped[name] += 1
        rows.append(_row(name, index, result))
    write_report(report, rows, out_dir)
    return report


def _row(name: str, index: int, result: EpisodeResult) -> dict[str, Any]:
    agent = result.agent or {}
    return {"controller": name, "scenario": index, "label": result.spec.env.label,
            "score": result.score, "faithful": result.faithful,
            "recv_rate_bps": result.metrics.get("recv_rate_bps"),
            "delay_p95_ms": result.metrics.get("delay_p95_ms"),
            "loss": result.metrics.get("loss"), "decisions": agent.get("decisions"),
            "misses": agent.get("misses"), "wall_s": round(result.wall_s, 2),
            "error": (result.error or "")[:200], "run_dir": result.run_dir}


def write_report(report: EvalReport, rows: list[dict[str, Any]], out_dir: Path) -> None:
    (out_dir / "eval.json").write_text(json.dumps(report.as_dict(), indent=1))
    with open(out_dir / "eval.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["controller"])
        writer.writeheader()
        writer.writerows(rows)
    plot_report(report, out_dir / "eval.png")


def plot_report(report: EvalReport, path: Path) -> None:
    """Per-scenario means with 95 % intervals, one bar per controller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.envs)
    width = 0.8 / max(1, len(report.controllers))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * n + 2), 4))
    for k, name in enumerate(report.controllers):
        means, errs = [], []
        for i in range(n):
            interval = report.scenario(name, i)
            means.append(0.0 if math.isnan(interval.mean) else interval.mean)
            errs.append(0.0 if math.isnan(interval.half_width) else interval.half_width)
        xs = [i + (k - (len(report.controllers) - 1) / 2) * width for i in range(n)]
        agg = report.aggregate(name)
        ax.bar(xs, means, width, yerr=errs, capsize=2, label=f"{name} ({agg})")
    ax.set_xticks(range(n))
    ax.set_xticklabels([str(i) for i in range(n)])
    ax.set_xlabel("scenario")
    ax.set_ylabel("OpenNetLab network score (95 % CI)")
    ax.set_ylim(0, 72)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_lines(report: EvalReport) -> list[str]:
    lines = [f"{name:>12}: {report.aggregate(name)} (mean over scenarios, 95 % CI)"
             for name in report.controllers]
    for policy in report.policies():
        lines.append(f"{policy} − {report.baseline}: {report.difference(policy, report.baseline)}"
                     f"; beats {report.baseline} in "
                     f"{report.beats(policy, report.baseline):.0%} of scenarios")
    policies = report.policies()
    for i, a in enumerate(policies):
        for b in policies[i + 1:]:
            lines.append(f"{a} − {b}: {report.difference(a, b)}; {a} better in "
                         f"{report.beats(a, b):.0%} of scenarios")
    if any(report.dropped.values()):
        lines.append(f"left out (failed or unfaithful): {report.dropped}")
    return lines
