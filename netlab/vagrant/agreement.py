"""Namespaces versus VMs as a measurement: each flow's metrics over N runs a side.

One run a side says little: a GCC call's p95 delay alone varies by a quarter
from run to run in namespaces.  So each side's runs give a mean with its
t interval, and the difference (VM - namespace) gets Welch's interval, in
the metric's unit and in per cent of the namespace mean.  A metric agrees
within the tolerance only when the whole interval of the relative difference
lies inside it; an interval that straddles the band is "unclear", which says
more runs are needed, not that the lab disagrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from netlab.intervals import CONFIDENCE, Difference, Interval, mean_interval, welch_difference

#: The metrics shown in the table (when a flow reports them); the JSON has every numeric one.
TABLE_METRICS = ("recv_rate_bps", "delay_p50_ms", "delay_p95_ms", "rtt_p50_ms", "rtt_p95_ms",
                 "loss")
Verdict = str  # "within" | "outside" | "unclear" | "no interval"


@dataclass(frozen=True)
class MetricAgreement:
    """One metric of one flow: both sides and their difference."""

    flow: str
    label: str  # what the flow is: "rtc fixed:600kbit", "tcp cubic"
    metric: str
    namespace: Interval
    vm: Interval
    difference: Difference
    verdict: Verdict

    def to_json(self) -> dict[str, Any]:
        def side(interval: Interval) -> dict[str, Any]:
            return {"n": interval.n, "mean": interval.mean, "sd": interval.sd,
                    "ci95": None if interval.low is None else [interval.low, interval.high]}

        d = self.difference
        return {"flow": self.flow, "label": self.label, "metric": self.metric,
                "namespace": side(self.namespace), "vm": side(self.vm),
                "difference": {"value": d.value,
                               "ci95": None if d.low is None else [d.low, d.high],
                               "welch_df": d.df, "percent": _pct(d.relative),
                               "percent_ci95": None if d.relative_low is None
                               else [_pct(d.relative_low), _pct(d.relative_high)]},
                "verdict": self.verdict}


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


def flow_label(flow: dict[str, Any]) -> str:
    """A flow as a reader names it: its kind and its estimator or congestion control."""
    detail = flow.get("estimator") or flow.get("cc") or ""
    return f"{flow.get('kind', '?')} {detail}".strip()


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(float(value))}


def judge(difference: Difference, tolerance: float) -> Verdict:
    """Inside the band only if the whole 95 % interval of the relative difference is."""
    low, high = difference.relative_low, difference.relative_high
    if low is None or high is None:
        return "no interval"
    if -tolerance <= low and high <= tolerance:
        return "within"
    if high < -tolerance or low > tolerance:
        return "outside"
    return "unclear"


def compare_results(namespace: list[dict[str, Any]], vm: list[dict[str, Any]], *,
                    tolerance: float) -> list[MetricAgreement]:
    """Every numeric metric that every run of both sides reports, flow by flow, in the
    scenario's flow order."""
    rows: list[MetricAgreement] = []
    if not namespace or not vm:
        return rows
    order = [flow["id"] for flow in namespace[0].get("flows") or []]
    labels = {flow["id"]: flow_label(flow) for flow in namespace[0].get("flows") or []}

    def values(results: list[dict[str, Any]], flow_id: str) -> list[dict[str, float]]:
        found = []
        for result in results:
            flow = next((f for f in result.get("flows") or [] if f.get("id") == flow_id), None)
            found.append(_numeric(flow.get("metrics") or {}) if flow else {})
        return found

    for flow_id in order:
        ns_runs, vm_runs = values(namespace, flow_id), values(vm, flow_id)
        common = set.intersection(*(set(run) for run in ns_runs + vm_runs))
        for metric in sorted(common, key=_metric_order):
            ns = mean_interval([run[metric] for run in ns_runs])
            on_vm = mean_interval([run[metric] for run in vm_runs])
            difference = welch_difference(ns, on_vm)
            rows.append(MetricAgreement(flow_id, labels[flow_id], metric, ns, on_vm, difference,
                                        judge(difference, tolerance)))
    return rows


def _metric_order(metric: str) -> tuple[int, str]:
    return (TABLE_METRICS.index(metric) if metric in TABLE_METRICS else len(TABLE_METRICS),
            metric)


# -- rendering ------------------------------------------------------------------------

_SCALE = {"_bps": (1e-6, "Mbit/s"), "_ms": (1.0, "ms"), "loss": (100.0, "%")}


def _unit(metric: str) -> tuple[float, str]:
    for suffix, scale in _SCALE.items():
        if metric.endswith(suffix):
            return scale
    return 1.0, ""


def _num(value: float, scale: float) -> str:
    return f"{value * scale:.4g}"


def _side(interval: Interval, scale: float) -> str:
    half = interval.half_width
    text = _num(interval.mean, scale)
    return text if half is None else f"{text} ± {_num(half, scale)}"


def _signed(value: float, scale: float) -> str:
    return f"{value * scale:+.3g}"


def _difference(d: Difference, scale: float) -> str:
    text = _signed(d.value, scale)
    if d.low is None or d.high is None:
        return text
    return f"{text} [{_signed(d.low, scale)}, {_signed(d.high, scale)}]"


def _percent(d: Difference) -> str:
    if d.relative is None:
        return "-"
    text = f"{d.relative * 100:+.1f}"
    if d.relative_low is None or d.relative_high is None:
        return text + " %"
    return f"{text} [{d.relative_low * 100:+.1f}, {d.relative_high * 100:+.1f}] %"


def agreement_table(rows: list[MetricAgreement], *, runs: tuple[int, int], tolerance: float,
                    everything: bool = False) -> Table:
    """Each side as mean ± the 95 % half-width, the difference with its 95 % interval."""
    table = Table(title=f"VM - namespace, {runs[0]} namespace and {runs[1]} VM runs; "
                        f"mean ± {CONFIDENCE:.0%} interval; agree within ±{tolerance:.0%}?",
                  title_justify="left")
    for column in ("flow", "metric", "unit", "namespace", "VM", "VM - namespace",
                   "in %", "agree"):
        table.add_column(column, justify="left" if column in ("flow", "metric", "unit",
                                                              "agree") else "right")
    previous = None
    for row in rows:
        if not everything and row.metric not in TABLE_METRICS:
            continue
        scale, unit = _unit(row.metric)
        flow = f"{row.flow} ({row.label})" if row.flow != previous else ""
        previous = row.flow
        table.add_row(flow, row.metric, unit, _side(row.namespace, scale), _side(row.vm, scale),
                      _difference(row.difference, scale), _percent(row.difference), row.verdict)
    return table


def report_json(rows: list[MetricAgreement], *, scenario: str, tolerance: float,
                namespace_runs: list[str], vm_runs: list[str],
                fidelity: dict[str, Any]) -> dict[str, Any]:
    """``compare.json``: the runs it rests on, both sides' fidelity and every metric."""
    return {"scenario": scenario, "confidence": CONFIDENCE, "tolerance": tolerance,
            "runs": {"namespace": namespace_runs, "vm": vm_runs}, "fidelity": fidelity,
            "metrics": [row.to_json() for row in rows]}


def fidelity_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """How many runs of a side were faithful, and what their verdicts blamed."""
    verdicts = [(r.get("fidelity") or {}) for r in results]
    return {"faithful": sum(1 for v in verdicts if v.get("faithful")), "runs": len(results),
            "verdicts": [(v.get("verdicts") or ["-"])[0] for v in verdicts],
            "machine_causes": [((v.get("machine") or {}).get("causes") or []) for v in verdicts]}
