"""Sim-versus-emulation statistics over a scenario set, and whether they rank alike.

Input: the entries of :func:`netlab.learning.gap.gap`, one per scenario ×
controller, each with the simulated metric vector and the emulated runs.
Per controller and metric: the simulated and emulated means over scenarios
and their paired difference (emulation − simulation), each with a 95 %
Student-t interval over scenarios (``netlab.learning.evaluate``'s), and
the same pooled over controllers. An emulated run whose fidelity report
failed is left out (and counted, per controller) unless kept on purpose.

Ranking: a simulator is useful for choosing between controllers if it
orders them as emulation does, even where its levels are off. Per metric,
Kendall's tau between the controllers' simulated and emulated means over
the scenarios every controller completed (1: the same order; −1: reversed),
and the mean of the per-scenario taus with its interval. With three
controllers tau takes the values ±1 and ±1/3 only, so the report also says
whether the order is exactly the same.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netlab.learning.evaluate import Interval
from netlab.learning.gap import COMPARED

METRICS = tuple(name for name, _ in COMPARED)
#: The metric the one-line verdict is about (OpenNetLab's network score).
HEADLINE = "network_score"


@dataclass
class Pair:
    """One scenario × controller: simulated and emulated (mean over kept runs) values."""

    scenario: str
    controller: str
    sim: dict[str, float | None]
    emulation: dict[str, float | None]


@dataclass
class GapReport:
    controllers: list[str]
    scenarios: list[str]
    pairs: list[Pair]
    unfaithful: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)  # no kept run for a scenario

    def values(self, controller: str, metric: str) -> list[tuple[float, float]]:
        """(sim, emulation) over scenarios where both are known."""
        out = []
        for pair in self.pairs:
            if pair.controller != controller:
                continue
            s, e = pair.sim.get(metric), pair.emulation.get(metric)
            if s is not None and e is not None and math.isfinite(s) and math.isfinite(e):
                out.append((s, e))
        return out

    def compare(self, controller: str, metric: str) -> dict[str, Any]:
        pairs = self.values(controller, metric)
        return {"sim": Interval.of([s for s, _ in pairs]).as_dict(),
                "emulation": Interval.of([e for _, e in pairs]).as_dict(),
                "difference": Interval.of([e - s for s, e in pairs]).as_dict()}

    def pooled(self, metric: str) -> dict[str, Any]:
        diffs = [e - s for c in self.controllers for s, e in self.values(c, metric)]
        return {"difference": Interval.of(diffs).as_dict()}

    def common_scenarios(self, metric: str) -> list[str]:
        """Scenarios where every controller has both values of ``metric``."""
        have: dict[str, set[str]] = {}
        for pair in self.pairs:
            s, e = pair.sim.get(metric), pair.emulation.get(metric)
            if s is not None and e is not None:
                have.setdefault(pair.scenario, set()).add(pair.controller)
        return [s for s in self.scenarios if have.get(s, set()) >= set(self.controllers)]

    def ranking(self, metric: str) -> dict[str, Any]:
        """Do simulation and emulation order the controllers alike on ``metric``?"""
        common = self.common_scenarios(metric)
        lookup = {(p.scenario, p.controller): p for p in self.pairs}

        def mean(controller: str, side: str) -> float:
            return statistics.fmean(
                float(getattr(lookup[(s, controller)], side)[metric]) for s in common)

        out: dict[str, Any] = {"scenarios": len(common)}
        if not common or len(self.controllers) < 2:
            return {**out, "tau": None, "same_order": None}
        sim_means = {c: mean(c, "sim") for c in self.controllers}
        emu_means = {c: mean(c, "emulation") for c in self.controllers}
        per_scenario = [kendall_tau(
            [float(lookup[(s, c)].sim[metric]) for c in self.controllers],  # type: ignore[arg-type]
            [float(lookup[(s, c)].emulation[metric]) for c in self.controllers])  # type: ignore[arg-type]
            for s in common]
        finite = [t for t in per_scenario if not math.isnan(t)]
        tau = kendall_tau(list(sim_means.values()), list(emu_means.values()))
        return {**out, "sim_means": sim_means, "emulation_means": emu_means,
                "sim_order": order(sim_means), "emulation_order": order(emu_means),
                "tau": None if math.isnan(tau) else round(tau, 4),
                "same_order": same_ranks(list(sim_means.values()), list(emu_means.values())),
                "per_scenario_tau": Interval.of(finite).as_dict()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "controllers": self.controllers, "scenarios": self.scenarios,
            "episodes_unfaithful": self.unfaithful, "pairs_missing": self.missing,
            "per_controller": {c: {m: self.compare(c, m) for m in METRICS}
                               for c in self.controllers},
            "pooled": {m: self.pooled(m) for m in METRICS},
            "ranking": {m: self.ranking(m) for m in METRICS},
            "verdict": verdict(self.ranking(HEADLINE), HEADLINE),
        }


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two orderings (scipy); NaN when one side is all ties."""
    from scipy import stats  # type: ignore[import-untyped]

    if len(a) < 2:
        return math.nan
    result = stats.kendalltau(a, b)
    return float(result.statistic)


def same_ranks(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two value vectors rank their items identically, ties included."""
    from scipy import stats

    return bool((stats.rankdata(a) == stats.rankdata(b)).all())


def order(means: dict[str, float]) -> list[str]:
    """Controllers from the largest mean to the smallest."""
    return sorted(means, key=lambda c: -means[c])


def verdict(ranking: dict[str, Any], metric: str) -> str:
    if ranking.get("tau") is None:
        return f"{metric}: too few scenarios or controllers to compare rankings"
    sim, emu = " > ".join(ranking["sim_order"]), " > ".join(ranking["emulation_order"])
    how = "alike" if ranking["same_order"] else "differently"
    return (f"{metric}: simulation and emulation rank the controllers {how} "
            f"(Kendall tau {ranking['tau']:+.2f} over {ranking['scenarios']} scenarios; "
            f"sim {sim}; emulation {emu})")


def _mean_vector(vectors: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for metric in METRICS:
        values = [float(v[metric]) for v in vectors if v.get(metric) is not None]
        out[metric] = statistics.fmean(values) if values else None
    return out


def build_report(entries: Sequence[dict[str, Any]], *, keep_unfaithful: bool = False
                 ) -> GapReport:
    """Pairs from :func:`netlab.learning.gap.gap`'s entries (emulated runs averaged)."""
    controllers: list[str] = []
    scenarios: list[str] = []
    pairs: list[Pair] = []
    unfaithful: dict[str, int] = {}
    missing: dict[str, int] = {}
    for entry in entries:
        controller, scenario = entry["controller"], entry["scenario"]
        if controller not in controllers:
            controllers.append(controller)
        if scenario not in scenarios:
            scenarios.append(scenario)
        kept = []
        for run in entry["emulation"]:
            if run.get("faithful") is False:
                unfaithful[controller] = unfaithful.get(controller, 0) + 1
                if not keep_unfaithful:
                    continue
            kept.append(run)
        if not kept:
            missing[controller] = missing.get(controller, 0) + 1
            continue
        # Each run is compared with its own simulated twin (same trace offset and span).
        sims = [run["sim"] for run in kept]
        pairs.append(Pair(scenario, controller, _mean_vector(sims),
                          _mean_vector([run["metrics"] for run in kept])))
    for name in controllers:
        unfaithful.setdefault(name, 0)
        missing.setdefault(name, 0)
    return GapReport(controllers, scenarios, pairs, unfaithful, missing)
