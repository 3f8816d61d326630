"""Per-flow metrics, scores and time series from the endpoints' logs.

Each flow's kind reads its logs (:mod:`netlab.run.kinds`), metrics come
from ``endpoints.metrics`` (one clock on one machine, so one-way delay is
exact), and every flow gets a CSV time
series in 100 ms bins: ``t_s,recv_rate_bps,delay_ms,loss,target_bps,
estimate_bps,capacity_bps`` (empty where a column does not apply).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from endpoints.metrics.summary import link_fairness
from endpoints.rtc import logs as rtc_logs
from netlab.lab.plan import LabPlan, egress_path
from netlab.run.flows import FlowProcesses, RunningFlow
from netlab.run.kinds import kind_of
from netlab.run.kinds.base import Columns, FlowKind
from netlab.run.results import FlowResult
from netlab.scenario.model import Flow
from shaping.traces import load_trace

BIN_NS = 100_000_000
CSV_COLUMNS = ("t_s", "recv_rate_bps", "delay_ms", "loss", "target_bps", "estimate_bps",
               "capacity_bps")


def path_capacity(plan: LabPlan, src: str, dst: str, base_dir: Path | None,
                  times_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """The path's capacity at each time (seconds since the run's start): the
    smallest static rate or trace capacity (averaged over 100 ms, as the
    time series are) on it; None when nothing on the path is rate-limited."""
    limits: list[npt.NDArray[np.float64]] = []
    for iface in egress_path(plan, src, plan.hosts[dst].address):
        if iface.egress.trace is not None:
            trace = load_trace(iface.egress.trace, base_dir=base_dir).binned(BIN_NS / 1e9)
            if iface.egress.trace_loop is not None:
                trace = dataclasses.replace(trace, loop=iface.egress.trace_loop)
            limits.append(np.array([trace.capacity_at(max(0.0, t)) for t in times_s]))
        elif iface.egress.shape.rate_bps is not None:
            limits.append(np.full(times_s.shape, float(iface.egress.shape.rate_bps)))
    if not limits:
        return None
    lowest: npt.NDArray[np.float64] = np.minimum.reduce(limits)
    return lowest


def read_log(kind: rtc_logs.LogKind, directory: Path) -> npt.NDArray[Any] | None:
    """One of an RTC endpoint's logs; None when the process never wrote it."""
    try:
        return rtc_logs.read_kind(directory, kind)
    except FileNotFoundError:
        return None


def active_interval(flow: Flow, start_ns: int, end_ns: int,
                    started_ns: int | None = None) -> tuple[int, int]:
    """The flow's own interval on the run's clock: its start to its stop (or the end),
    so a flow that ran for half the run is not reported at half its rate. With
    ``started_ns`` (its sender's real start, after its receiver was ready), the
    interval begins there and lasts as long as the scenario asked."""
    if started_ns is not None:
        stop = end_ns if flow.stop_s is None else started_ns + int(
            (flow.stop_s - flow.start_s) * 1e9)
        begin = min(end_ns - 1, started_ns)
        return begin, max(begin + 1, min(end_ns, stop))
    begin = min(end_ns - 1, start_ns + int(flow.start_s * 1e9))
    stop = end_ns if flow.stop_s is None else start_ns + int(flow.stop_s * 1e9)
    return begin, max(begin + 1, min(end_ns, stop))


def write_csv(path: Path, count: int, columns: Columns) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for i in range(count):
            row: list[object] = [f"{i * BIN_NS / 1e9:.1f}"]
            for name in CSV_COLUMNS[1:]:
                values = columns.get(name, [])
                value = values[i] if i < len(values) else None
                ok = value is not None and not (isinstance(value, float) and math.isnan(value))
                row.append(f"{value:.6g}" if ok else "")
            writer.writerow(row)


def _on_run_clock(time_ns: int | None, start_ns: int) -> float | None:
    return None if time_ns is None else round((time_ns - start_ns) / 1e9, 3)


def pair_result(kind: FlowKind, fp: FlowProcesses, plan: LabPlan, run_dir: Path, *,
                start_ns: int, end_ns: int, base_dir: Path | None) -> FlowResult:
    """A two-ended flow's entry, its CSV time series (with the path's capacity) written."""
    flow = fp.flow
    bins = max(1, -(-(end_ns - start_ns) // BIN_NS))
    times_s = np.arange(bins, dtype=np.float64) * BIN_NS / 1e9
    capacity = path_capacity(plan, flow.src, flow.dst, base_dir, times_s)
    collected = kind.collect(fp, start_ns, end_ns, capacity)
    columns = dict(collected.columns)
    if capacity is not None:
        columns["capacity_bps"] = list(capacity)
    count = max((len(v) for v in columns.values()), default=0)
    write_csv(run_dir / "timeseries" / f"{flow.id}.csv", count, columns)
    return FlowResult(flow.id, flow.kind, flow.src, flow.dst, kind.control(flow),
                      collected.metrics, collected.scores, start_s=flow.start_s,
                      stop_s=flow.stop_s, logs=str(fp.directory),
                      ready_s=_on_run_clock(fp.ready_ns, start_ns),
                      started_s=_on_run_clock(fp.started_ns, start_ns))


def flow_results(flows: Sequence[RunningFlow], plan: LabPlan, run_dir: Path, *,
                 start_ns: int, end_ns: int, base_dir: Path | None = None
                 ) -> list[FlowResult]:
    """The results contract's ``flows[]`` entries, each from its kind.

    ``start_ns`` is the run's start (the traces' time zero)."""
    out: list[FlowResult] = []
    for rf in flows:
        out += kind_of(rf.flow.kind).results(rf, plan, run_dir, start_ns=start_ns,
                                             end_ns=end_ns, base_dir=base_dir)
    return out


def fairness_by_link(flows: list[FlowResult], plan: LabPlan) -> dict[str, float | None]:
    """Jain's index over the flows whose paths share each link direction."""
    sharing: dict[str, list[float]] = {}
    for entry in flows:
        rate = entry.metrics.get("recv_rate_bps")
        if rate is None or entry.dst is None:
            continue
        for iface in egress_path(plan, entry.src, plan.hosts[entry.dst].address):
            sharing.setdefault(f"{iface.link}:{iface.host}", []).append(float(rate))
    return {key: link_fairness(rates) for key, rates in sharing.items() if len(rates) > 1}
