"""Evaluate policies against a rule-based baseline on scenarios, in labs.

Every controller (one or more policy checkpoints, and the baseline, e.g.
GCC) runs alone over the same scenario, ``repeat`` times (the same trace
and seed: repeats measure the lab's run-to-run noise), K labs at a time.
Policies act deterministically (their mean action), as when served. A
scenario is a Genet-style environment or the user's own scenario file
(:mod:`netlab.learning.eval_inputs`).

Each episode gives a metric vector over the flows its controller drove
(:data:`~netlab.learning.labs.EPISODE_METRICS`): OpenNetLab's network score
(``score``), the capacity-normalised score (``capacity_score``),
``utilization``, ``delay_p95_ms``, ``frame_delay_p95_ms``, ``freezes``,
``loss``. Reported: per scenario and controller the means (the scores
with a 95 % Student-t interval over repeats); the aggregate (mean of the
scenario means, t interval over scenarios); per policy the paired
difference to the baseline (and between policies) over scenarios with its
95 % interval, for both scores; Genet's metric, the fraction of scenarios
where the policy's mean beats the baseline's; and, per controller, how many
episodes failed or were left out as unfaithful, so a reader can see whether
the exclusions fall on one side.
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
from netlab.learning.eval_inputs import EvalScenario
from netlab.learning.exclusions import Counts
from netlab.learning.labs import EPISODE_METRICS, EpisodePool, EpisodeResult, EpisodeSpec, LabPool
from netlab.learning.scenario_set import EnvConfig

BASELINES = ("gcc",)
#: The metrics compared pairwise (higher is better for both).
SCORES = ("score", "capacity_score")
#: eval.csv's metric columns: means over a scenario's kept episodes.
TABLE_METRICS = ("score", "capacity_score", "utilization", "delay_p95_ms", "frame_delay_p95_ms",
                 "freezes", "loss", "recv_rate_bps")
EPISODES_FILE = "episodes.csv"


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


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


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
        return {"mean": _clean(self.mean), "ci95": _clean(self.half_width),
                "low": _clean(self.mean - self.half_width),
                "high": _clean(self.mean + self.half_width), "n": self.n}

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        if math.isnan(self.half_width):
            return f"{self.mean:.2f}"
        return f"{self.mean:.2f} ± {self.half_width:.2f}"


Vector = dict[str, Any]  # one episode's metric vector (EPISODE_METRICS)


@dataclass
class EvalReport:
    controllers: list[str]
    baseline: str
    scenarios: list[EvalScenario]
    #: controller -> scenario index -> the metric vectors of its kept episodes
    runs: dict[str, dict[int, list[Vector]]]
    counts: dict[str, dict[int, Counts]] = field(default_factory=dict)
    require_faithful: bool = True

    def values(self, name: str, index: int, metric: str = "score") -> list[float]:
        return [float(v[metric]) for v in self.runs[name].get(index, [])
                if isinstance(v.get(metric), int | float)]

    def scenario(self, name: str, index: int, metric: str = "score") -> Interval:
        return Interval.of(self.values(name, index, metric))

    def mean(self, name: str, index: int, metric: str) -> float:
        values = self.values(name, index, metric)
        return statistics.fmean(values) if values else math.nan

    def common(self, *names: str, metric: str = "score") -> list[int]:
        return [i for i in range(len(self.scenarios))
                if all(self.values(n, i, metric) for n in names)]

    def aggregate(self, name: str, metric: str = "score") -> Interval:
        return Interval.of([self.mean(name, i, metric) for i in self.common(name, metric=metric)])

    def difference(self, a: str, b: str, metric: str = "score") -> Interval:
        """Paired over scenarios: mean of ``a`` − mean of ``b``."""
        return Interval.of([self.mean(a, i, metric) - self.mean(b, i, metric)
                            for i in self.common(a, b, metric=metric)])

    def beats(self, a: str, b: str, metric: str = "score") -> float:
        """Genet's metric: the fraction of scenarios where ``a``'s mean beats ``b``'s."""
        common = self.common(a, b, metric=metric)
        if not common:
            return math.nan
        return sum(self.mean(a, i, metric) > self.mean(b, i, metric) for i in common) / len(
            common)

    def policies(self) -> list[str]:
        return [c for c in self.controllers if c != self.baseline]

    def cell(self, name: str, index: int) -> Counts:
        return self.counts.get(name, {}).get(index, Counts())

    def totals(self, name: str) -> Counts:
        total = Counts()
        for counts in self.counts.get(name, {}).values():
            total.add(counts)
        return total

    def _comparison(self, a: str, b: str, beats_key: str) -> dict[str, Any]:
        out: dict[str, Any] = {"difference": self.difference(a, b).as_dict(),
                               beats_key: _fraction(self.beats(a, b))}
        for metric in SCORES[1:]:
            out[metric] = {"difference": self.difference(a, b, metric).as_dict(),
                           beats_key: _fraction(self.beats(a, b, metric))}
        return out

    def as_dict(self) -> dict[str, Any]:
        policies = self.policies()
        faithful = self.require_faithful
        out: dict[str, Any] = {
            "baseline": self.baseline, "controllers": self.controllers,
            "require_faithful": faithful, "metrics": list(EPISODE_METRICS),
            "episodes": {c: self.totals(c).as_dict(faithful) for c in self.controllers},
            "episodes_dropped": {c: self.totals(c).left_out(faithful) for c in self.controllers},
            "episodes_unfaithful": sum(self.totals(c).unfaithful for c in self.controllers),
            "aggregate": {c: self.aggregate(c).as_dict() for c in self.controllers},
            "aggregate_metrics": {c: {m: self.aggregate(c, m).as_dict() for m in TABLE_METRICS}
                                  for c in self.controllers},
            "vs_baseline": {p: self._comparison(p, self.baseline, "fraction_beats_baseline")
                            for p in policies},
            "scenarios": [{"name": s.name, "source": s.source, "env": s.env.as_dict(),
                           "label": s.env.label,
                           **{c: {**self.scenario(c, i).as_dict(),
                                  "scores": self.values(c, i),
                                  "metrics": {m: _clean(self.mean(c, i, m))
                                              for m in TABLE_METRICS},
                                  "capacity_score": self.scenario(c, i, "capacity_score"
                                                                  ).as_dict(),
                                  "episodes": self.cell(c, i).as_dict(faithful)}
                              for c in self.controllers}}
                          for i, s in enumerate(self.scenarios)],
        }
        if len(policies) >= 2:
            out["between_policies"] = {f"{a} - {b}": self._comparison(a, b, "fraction_a_beats_b")
                                       for i, a in enumerate(policies) for b in policies[i + 1:]}
        return out


def _fraction(x: float) -> float | None:
    return None if math.isnan(x) else x


def episode_specs(controllers: Mapping[str, str | None], scenarios: Sequence[EvalScenario],
                  repeat: int, out_dir: Path, *, deadline_s: float, backend: str | None
                  ) -> list[tuple[str, int, EpisodeSpec]]:
    """(controller, scenario index, spec) for every run; repeats interleave so a
    slow period of the machine does not fall on one controller."""
    runs = []
    for r in range(repeat):
        for i, scenario in enumerate(scenarios):
            for name, checkpoint in controllers.items():
                estimator = "policy" if checkpoint is not None else name
                runs.append((name, i, EpisodeSpec(
                    scenario.env, str(out_dir / "episodes" / f"{name}-s{i:03d}-r{r}"),
                    estimator=estimator, checkpoint=checkpoint, explore=False,
                    deadline_s=deadline_s, backend=backend)))
    return runs


def _as_scenarios(scenarios: Sequence[EvalScenario | EnvConfig]) -> list[EvalScenario]:
    return [s if isinstance(s, EvalScenario) else EvalScenario(s.label, s, "")
            for s in scenarios]


def evaluate(policies: Mapping[str, str | Path], scenarios: Sequence[EvalScenario | EnvConfig],
             out_dir: Path, *, baseline: str = "gcc", repeat: int = 3, parallel: int = 2,
             deadline_s: float = 0.02, backend: str | None = None, lab_prefix: str = "fte",
             require_faithful: bool = True, pool: EpisodePool | None = None) -> EvalReport:
    """Run every policy and the baseline over ``scenarios``; write eval.json,
    eval.csv, episodes.csv and the plots. ``pool`` runs the episodes elsewhere
    (a Ray cluster); by default K = ``parallel`` local labs."""
    from netlab.learning.eval_plots import plot_pareto, plot_scores

    if baseline not in BASELINES:
        raise NetlabError(f"unknown baseline {baseline!r}", where="--baseline",
                          fix=f"use one of {', '.join(BASELINES)}")
    chosen = _as_scenarios(scenarios)
    if not chosen:
        raise NetlabError("no scenarios to evaluate", where="--scenarios",
                          fix="give a set with at least one environment")
    for name, path in policies.items():
        if not Path(path).is_file():
            raise NetlabError(f"policy checkpoint {path} does not exist", where=f"--policy {name}",
                              fix="give the path of a .pth file")
    controllers: dict[str, str | None] = {n: str(Path(p).resolve()) for n, p in policies.items()}
    controllers[baseline] = None
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = episode_specs(controllers, chosen, repeat, out_dir, deadline_s=deadline_s,
                         backend=backend)
    pool = pool or LabPool(parallel, lab_prefix=lab_prefix)
    results = pool.run([s for _, _, s in runs])
    report = EvalReport(list(controllers), baseline, chosen, {c: {} for c in controllers},
                        {c: {} for c in controllers}, require_faithful)
    rows = []
    for (name, index, _), result in zip(runs, results, strict=True):
        if report.counts[name].setdefault(index, Counts()).count(result, require_faithful):
            report.runs[name].setdefault(index, []).append(dict(result.metrics))
        rows.append(_row(name, chosen[index].name, result))
    write_report(report, rows, out_dir)
    plot_scores(report, out_dir / "eval.png")
    plot_pareto(report, out_dir / "eval-pareto.png")
    return report


def _row(name: str, scenario: str, result: EpisodeResult) -> dict[str, Any]:
    agent = result.agent or {}
    return {"controller": name, "scenario": scenario, "faithful": result.faithful,
            **{m: result.metrics.get(m) for m in TABLE_METRICS},
            "decisions": agent.get("decisions"), "misses": agent.get("misses"),
            "wall_s": round(result.wall_s, 2), "error": (result.error or "")[:200],
            "run_dir": result.run_dir, "node": result.node}


def scenario_rows(report: EvalReport) -> list[dict[str, Any]]:
    """eval.csv: one row per scenario and controller, scenarios by name."""
    rows = []
    for i, scenario in enumerate(report.scenarios):
        for name in report.controllers:
            counts = report.cell(name, i).as_dict(report.require_faithful)
            score = report.scenario(name, i)
            rows.append({"scenario": scenario.name, "controller": name,
                         "episodes": counts["ran"], "kept": counts["kept"],
                         "unfaithful": counts["unfaithful"], "failed": counts["failed"],
                         **{m: _clean(report.mean(name, i, m)) for m in TABLE_METRICS},
                         "score_ci95": _clean(score.half_width)})
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]], default: Sequence[str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else list(default))
        writer.writeheader()
        writer.writerows(rows)


def write_report(report: EvalReport, episode_rows: list[dict[str, Any]], out_dir: Path) -> None:
    (out_dir / "eval.json").write_text(json.dumps(report.as_dict(), indent=1))
    _write_csv(out_dir / "eval.csv", scenario_rows(report), ("scenario", "controller"))
    _write_csv(out_dir / EPISODES_FILE, episode_rows, ("controller", "scenario"))


def _cell(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def table_lines(report: EvalReport) -> list[str]:
    """Per scenario and controller: kept/ran episodes and the mean metric vector."""
    columns = (("score", 1), ("capacity_score", 1), ("utilization", 2), ("delay_p95_ms", 0),
               ("frame_delay_p95_ms", 0), ("freezes", 1), ("loss", 3))
    heads = ("scenario", "controller", "kept", "score", "cap.score", "util", "delay95",
             "frame95", "freezes", "loss")
    body = []
    for i, scenario in enumerate(report.scenarios):
        for name in report.controllers:
            counts = report.cell(name, i)
            kept = counts.ran - counts.left_out(report.require_faithful)
            body.append((scenario.name, name, f"{kept}/{counts.ran}",
                         *(_cell(report.mean(name, i, m), d) for m, d in columns)))
    widths = [max(len(str(r[k])) for r in (heads, *body)) for k in range(len(heads))]
    return ["  ".join(str(v).ljust(w) if k < 2 else str(v).rjust(w)
                      for k, (v, w) in enumerate(zip(row, widths, strict=True)))
            for row in (heads, *body)]


def summary_lines(report: EvalReport) -> list[str]:
    lines = table_lines(report)
    for name in report.controllers:
        lines.append(f"{name:>12}: score {report.aggregate(name)}, capacity score "
                     f"{report.aggregate(name, 'capacity_score')} (mean over scenarios, 95 % CI)")
    policies = report.policies()
    for policy in policies:
        for metric in SCORES:
            lines.append(f"{policy} − {report.baseline} ({metric}): "
                         f"{report.difference(policy, report.baseline, metric)}; beats "
                         f"{report.baseline} in "
                         f"{_percent(report.beats(policy, report.baseline, metric))} of scenarios")
    for i, a in enumerate(policies):
        for b in policies[i + 1:]:
            lines.append(f"{a} − {b} (score): {report.difference(a, b)}; {a} better in "
                         f"{_percent(report.beats(a, b))} of scenarios")
    verb = "left out" if report.require_faithful else "kept anyway"
    lines.append("episodes per controller (unfaithful " + verb + "): " + ", ".join(
        f"{name} {t.ran - t.left_out(report.require_faithful)}/{t.ran} kept, "
        f"{t.unfaithful} unfaithful, {t.failed} failed"
        for name in report.controllers for t in [report.totals(name)]))
    return lines


def _percent(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.0%}"
