"""Per-flow metrics, scores and time series from the endpoints' logs.

Logs are read once, metrics come from ``endpoints.metrics`` (one clock on
one machine, so one-way delay is exact), and every flow gets a CSV time
series in 100 ms bins: ``t_s,recv_rate_bps,delay_ms,loss,target_bps,
estimate_bps,capacity_bps`` (empty where a column does not apply).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from endpoints.metrics.series import hold_values, rate_series, rebin
from endpoints.metrics.summary import link_fairness, rtc_flow_metrics, tcp_flow_metrics
from endpoints.rtc import logs as rtc_logs
from endpoints.tcp import logs as tcp_logs
from netlab.flows import FlowProcesses
from netlab.lab.plan import LabPlan, egress_path
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


def _read(kind: rtc_logs.LogKind, directory: Path) -> npt.NDArray[Any] | None:
    try:
        return rtc_logs.read_kind(directory, kind)
    except FileNotFoundError:
        return None


def _active(flow: Flow, start_ns: int, end_ns: int) -> tuple[int, int]:
    """The flow's own interval on the run's clock: its start to its stop (or the end),
    so a flow that ran for half the run is not reported at half its rate."""
    begin = min(end_ns - 1, start_ns + int(flow.start_s * 1e9))
    stop = end_ns if flow.stop_s is None else start_ns + int(flow.stop_s * 1e9)
    return begin, max(begin + 1, min(end_ns, stop))


def _rtc(fp: FlowProcesses, start_ns: int, end_ns: int,
         capacity: npt.NDArray[np.float64] | None
         ) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[float | None]]]:
    received = _read(rtc_logs.RECEIVER_PACKETS, fp.receiver_dir)
    sent = _read(rtc_logs.SENDER_PACKETS, fp.sender_dir)
    rate_log = _read(rtc_logs.SENDER_RATE, fp.sender_dir)
    estimates = _read(rtc_logs.RECEIVER_ESTIMATES, fp.receiver_dir)
    if received is None or received.size == 0:
        return {"recv_rate_bps": 0.0, "delay_p50_ms": None, "delay_p95_ms": None,
                "delay_p99_ms": None, "loss": None, "note": "no packet arrived"}, {}, {}
    targets = (rate_log["time_ns"], rate_log["target_bps"]) if rate_log is not None else None
    bin_times = start_ns + BIN_NS * np.arange(len(capacity) if capacity is not None else 0)
    active_start_ns, active_end_ns = _active(fp.flow, start_ns, end_ns)
    summary = rtc_flow_metrics(
        received, sent, start_ns=active_start_ns, end_ns=active_end_ns, estimates=targets,
        capacity=(bin_times, capacity) if capacity is not None else None)
    rates = rate_series(received["arrival_ns"], received["size"], bin_ns=BIN_NS,
                        start_ns=start_ns, end_ns=end_ns)
    bins = rates.bin_start_ns
    delays: list[float | None] = []
    stamped = received["send_ns"] >= 0
    owd_ms = (received["arrival_ns"] - received["send_ns"]) / 1e6
    index = (received["arrival_ns"] - start_ns) // BIN_NS
    for i in range(len(bins)):
        chosen = owd_ms[(index == i) & stamped]
        delays.append(float(np.median(chosen)) if chosen.size else None)
    columns: dict[str, list[float | None]] = {
        "recv_rate_bps": list(rates.rate_bps), "delay_ms": delays,
        "target_bps": (list(hold_values(rate_log["time_ns"], rate_log["target_bps"], bins))
                       if rate_log is not None and rate_log.size else []),
        "estimate_bps": (list(hold_values(estimates["time_ns"], estimates["estimate_bps"],
                                          bins))
                         if estimates is not None and estimates.size else []),
    }
    return summary.metrics, summary.scores, columns


def _tcp(fp: FlowProcesses, start_ns: int, end_ns: int
         ) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[float | None]]]:
    try:
        info: npt.NDArray[Any] | None = tcp_logs.read_tcp_info_log(fp.sender_dir)
    except FileNotFoundError:
        info = None
    try:
        bins = tcp_logs.read_recv_bins(fp.receiver_dir)
    except FileNotFoundError:
        return {"recv_rate_bps": 0.0, "delay_p50_ms": None, "delay_p95_ms": None,
                "delay_p99_ms": None, "loss": None, "note": "the receiver wrote no log"}, {}, {}
    summary = tcp_flow_metrics(info, bins)
    rates = rebin(bins["bin_start_ns"], bins["bytes"], bin_ns=BIN_NS, start_ns=start_ns,
                  end_ns=end_ns)
    return summary.metrics, summary.scores, {"recv_rate_bps": list(rates.rate_bps)}


def _write_csv(path: Path, count: int, columns: dict[str, list[float | None]]) -> None:
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


def flow_results(flows: list[FlowProcesses], plan: LabPlan, run_dir: Path, *,
                 start_ns: int, end_ns: int, base_dir: Path | None = None
                 ) -> list[dict[str, Any]]:
    """The results contract's ``flows[]`` entries, with time series written.

    ``start_ns`` is the run's start (the traces' time zero)."""
    out: list[dict[str, Any]] = []
    bins = max(1, -(-(end_ns - start_ns) // BIN_NS))
    times_s = np.arange(bins, dtype=np.float64) * BIN_NS / 1e9
    for fp in flows:
        flow = fp.flow
        capacity = path_capacity(plan, flow.src, flow.dst, base_dir, times_s)
        if flow.kind == "rtc":
            metrics, scores, columns = _rtc(fp, start_ns, end_ns, capacity)
            control = {"estimator": str(flow.options.get("estimator", "gcc"))}
        else:
            metrics, scores, columns = _tcp(fp, start_ns, end_ns)
            control = {"cc": str(flow.options.get("cc", "cubic")),
                       "rate_control": str(flow.options.get("rate_control", "kernel"))}
        if capacity is not None:
            columns["capacity_bps"] = list(capacity)
        count = max((len(v) for v in columns.values()), default=0)
        _write_csv(run_dir / "timeseries" / f"{flow.id}.csv", count, columns)
        out.append({"id": flow.id, "kind": flow.kind, "from": flow.src, "to": flow.dst,
                    **control, "start_s": flow.start_s, "stop_s": flow.stop_s,
                    "metrics": metrics, "scores": scores, "logs": str(fp.directory)})
    return out


def fairness_by_link(flows: list[dict[str, Any]], plan: LabPlan) -> dict[str, float | None]:
    """Jain's index over the flows whose paths share each link direction."""
    sharing: dict[str, list[float]] = {}
    for entry in flows:
        rate = entry["metrics"].get("recv_rate_bps")
        if rate is None:
            continue
        for iface in egress_path(plan, entry["from"], plan.hosts[entry["to"]].address):
            sharing.setdefault(f"{iface.link}:{iface.host}", []).append(float(rate))
    return {key: link_fairness(rates) for key, rates in sharing.items() if len(rates) > 1}
