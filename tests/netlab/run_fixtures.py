"""Run directories as ``netlab run`` writes them, for the plot and report tests.

A small fluid model of one 30 s run stands in for a lab: an RTC call
(AIMD-like estimator with a lag, a drop-tail queue that turns overshoot into
delay and loss) and a cubic TCP flow that joins at 10 s share a
trace-driven bottleneck with an outage; a link probe ran on a static link.
The metrics in ``results.json`` are computed from the very series written to
the CSVs, so the two always agree, as they do in a real run. Layout and
keys follow the results contract in docs/design.md.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

BIN_S = 0.1
HEADER = ("t_s", "recv_rate_bps", "delay_ms", "loss", "target_bps", "estimate_bps",
          "capacity_bps")
#: The bottleneck trace: (start s, capacity bit/s); 0 is an outage.
CAPACITY_STEPS = ((0.0, 3.0e6), (8.0, 1.2e6), (14.0, 0.0), (15.5, 2.5e6), (24.0, 4.0e6))
BASE_DELAY_MS = 40.0
QUEUE_BITS = 50 * 1200 * 8  # 50 packets of 1200 B
TCP_START_S = 10.0
PROBE_RATE_BPS = 5e6

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RunSpec:
    """What distinguishes one fixture run from another."""

    scenario: str = "lte-rtc"
    estimator: str = "gcc"
    #: Multiplicative increase per second and back-off factor of the estimator.
    growth_per_s: float = 0.3
    backoff: float = 0.85
    #: Queueing delay that triggers a back-off (a loss always does).
    backoff_queue_ms: float = 25.0
    seed: int = 7
    duration_s: float = 30.0
    faithful: bool = True
    with_tcp: bool = True
    with_probe: bool = True


def _capacity(t: FloatArray) -> FloatArray:
    starts = np.array([s for s, _ in CAPACITY_STEPS])
    values = np.array([c for _, c in CAPACITY_STEPS])
    out: FloatArray = values[np.searchsorted(starts, t, side="right") - 1]
    return out


def _rtc_series(spec: RunSpec, t: FloatArray, available: FloatArray,
                rng: np.random.Generator) -> dict[str, FloatArray]:
    estimate = np.empty_like(t)
    recv = np.empty_like(t)
    delay = np.full_like(t, math.nan)
    loss = np.full_like(t, math.nan)
    est, queue = 300e3, 0.0
    growth = (1.0 + spec.growth_per_s) ** BIN_S
    for i, avail in enumerate(available):
        send = est
        delivered = min(avail, send + queue / BIN_S)  # the link drains the queue first
        queue += (send - delivered) * BIN_S
        dropped = max(0.0, queue - QUEUE_BITS)
        queue = min(queue, QUEUE_BITS)
        recv[i] = min(avail, delivered * rng.normal(1.0, 0.03)) if avail > 0 else 0.0
        if recv[i] > 0:
            delay[i] = BASE_DELAY_MS + queue / avail * 1e3 + abs(rng.normal(0.0, 2.0))
            loss[i] = dropped / (send * BIN_S) if send > 0 else 0.0
        estimate[i] = est
        # back off on a loss or once the queue delay passes the threshold, else grow
        if avail <= 0 or dropped > 0 or queue / max(avail, 1.0) * 1e3 > spec.backoff_queue_ms:
            est = max(100e3, spec.backoff * min(est, max(recv[i], 100e3)))
        else:
            est = min(est * growth, 6e6)
    target = np.minimum(estimate, 5e6)  # the encoder's maximum bitrate
    return {"recv_rate_bps": recv, "delay_ms": delay, "loss": loss, "target_bps": target,
            "estimate_bps": estimate}


def _tcp_series(t: FloatArray, available: FloatArray,
                rng: np.random.Generator) -> dict[str, FloatArray]:
    active = t >= TCP_START_S
    recv = np.where(active, available * rng.uniform(0.85, 0.98, t.size), 0.0)
    nan = np.full_like(t, math.nan)
    return {"recv_rate_bps": recv, "delay_ms": nan, "loss": nan, "target_bps": nan,
            "estimate_bps": nan}


def _probe_series(t: FloatArray, rng: np.random.Generator) -> dict[str, FloatArray]:
    active = t < 3.0
    recv = np.where(active, PROBE_RATE_BPS * 0.956 * rng.normal(1.0, 0.01, t.size), 0.0)
    delay = np.where(active, 0.02 + np.abs(rng.normal(0.0, 0.01, t.size)), math.nan)
    loss = np.where(active, 0.0, math.nan)
    nan = np.full_like(t, math.nan)
    return {"recv_rate_bps": recv, "delay_ms": delay, "loss": loss, "target_bps": nan,
            "estimate_bps": nan}


def write_csv(path: Path, t: FloatArray, columns: dict[str, FloatArray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i, start in enumerate(t):
            row = [f"{start:.1f}"]
            for name in HEADER[1:]:
                value = float(columns[name][i])
                row.append("" if math.isnan(value) else f"{value:.6g}")
            writer.writerow(row)


def _pct(values: FloatArray, q: float) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, q)) if finite.size else None


def _basic_metrics(columns: dict[str, FloatArray], active: npt.NDArray[np.bool_]) -> dict[str, Any]:
    delay = columns["delay_ms"]
    loss = columns["loss"][active]
    return {"recv_rate_bps": float(columns["recv_rate_bps"][active].mean()),
            "delay_p50_ms": _pct(delay, 50), "delay_p95_ms": _pct(delay, 95),
            "delay_p99_ms": _pct(delay, 99),
            "loss": float(np.nanmean(loss)) if np.any(np.isfinite(loss)) else None}


def _network_score(metrics: dict[str, Any]) -> float:
    """A 0–100 score driven by delay, rate and loss like OpenNetLab's (not their
    exact weights): the fixture only needs a plausible, metric-driven number."""
    delay_score = max(0.0, 1.0 - (metrics["delay_p95_ms"] or 400.0) / 400.0)
    rate_score = min(1.0, float(metrics["recv_rate_bps"]) / 4e6)
    loss = float(metrics["loss"])
    return round(100.0 * (0.5 * delay_score + 0.4 * rate_score + 0.1 * (1 - loss)), 2)


def _scenario(spec: RunSpec) -> dict[str, Any]:
    shape = {"rate_bps": None, "delay_s": BASE_DELAY_MS / 1e3, "jitter_s": 0.0, "loss": 0.0,
             "queue": {"packets": 50, "bytes": None}}
    flows: list[dict[str, Any]] = [
        {"id": "rtc-alice-bob", "kind": "rtc", "src": "alice", "dst": "bob", "start_s": 0.0,
         "stop_s": None, "options": {"estimator": spec.estimator}}]
    if spec.with_tcp:
        flows.append({"id": "tcp-alice-bob", "kind": "tcp", "src": "alice", "dst": "bob",
                      "start_s": TCP_START_S, "stop_s": None, "options": {"cc": "cubic"}})
    return {
        "name": spec.scenario, "duration_s": spec.duration_s, "seed": spec.seed,
        "hosts": [{"name": h, "sysctls": {}} for h in ("alice", "router", "bob")],
        "links": [
            {"name": "alice-router", "a": "alice", "b": "router",
             "up": {"shape": shape, "trace": "traces/fixture.up", "trace_loop": None},
             "down": {"shape": shape, "trace": None, "trace_loop": None}},
            {"name": "router-bob", "a": "router", "b": "bob",
             "up": {"shape": {**shape, "rate_bps": PROBE_RATE_BPS, "delay_s": 0.0},
                    "trace": None, "trace_loop": None},
             "down": {"shape": {**shape, "rate_bps": PROBE_RATE_BPS, "delay_s": 0.0},
                      "trace": None, "trace_loop": None}}],
        "flows": flows, "agents": [], "subnet": None, "source": f"scenarios/{spec.scenario}.yaml"}


def _fidelity(spec: RunSpec) -> dict[str, Any]:
    mape = 0.012 if spec.faithful else 0.14
    links = [{"link": "alice-router", "direction": "up",
              "timing_err_ms": {"p50": 0.21, "p99": 0.74, "max": 1.3},
              "capacity_mape": mape, "delay_err_ms": {"p50": 0.05, "p99": 0.4},
              "loss_asked": 0.0, "loss_seen": 0.0, "source": "replay log", "notes": []},
             {"link": "router-bob", "direction": "up", "timing_err_ms": None,
              "capacity_mape": 0.004, "delay_err_ms": {"p50": 0.01, "p99": 0.1},
              "loss_asked": None, "loss_seen": None, "source": "link probe", "notes": []}]
    verdicts = ([f"Faithful: all {len(links)} link directions did what the scenario asked "
                 "within the thresholds (timing p99 ≤ 2 ms, capacity error ≤ 5.0 %, delay "
                 "error p99 ≤ 1 ms)."] if spec.faithful else
                [f"Not faithful: alice-router up delivered a capacity {mape * 100:.1f} % off "
                 "the trace (threshold 5.0 %)."])
    return {"faithful": spec.faithful, "links": links,
            "thresholds": {"timing_err_ms_p99": 2.0, "capacity_mape": 0.05,
                           "delay_err_ms_p99": 1.0, "loss_abs_error": 0.005},
            "verdicts": verdicts}


def make_run_dir(base: Path, spec: RunSpec | None = None, name: str | None = None) -> Path:
    """Write a complete run directory (results.json + timeseries/*.csv) under ``base``."""
    spec = spec or RunSpec()
    rng = np.random.default_rng(spec.seed)
    run_dir = base / (name or f"{spec.scenario}-{spec.estimator}-{spec.seed}")
    run_dir.mkdir(parents=True)
    t = np.round(np.arange(0.0, spec.duration_s, BIN_S), 3)
    capacity = _capacity(t)
    share = np.where((t >= TCP_START_S) & spec.with_tcp, 0.5, 1.0)
    flows: list[dict[str, Any]] = []

    rtc = _rtc_series(spec, t, capacity * share, rng)
    rtc["capacity_bps"] = capacity
    write_csv(run_dir / "timeseries" / "rtc-alice-bob.csv", t, rtc)
    metrics = _basic_metrics(rtc, np.ones_like(t, dtype=bool))
    ratio = rtc["estimate_bps"][capacity > 0] / capacity[capacity > 0]
    metrics.update(send_rate_bps=float(rtc["target_bps"].mean()),
                   frame_delay_p50_ms=(metrics["delay_p50_ms"] or 0) + 18.0,
                   frame_delay_p95_ms=(metrics["delay_p95_ms"] or 0) + 35.0,
                   freezes=int(np.count_nonzero(rtc["recv_rate_bps"] == 0) // 5),
                   freeze_time_s=float(np.count_nonzero(rtc["recv_rate_bps"] == 0) * BIN_S),
                   estimate_vs_capacity={"mean_ratio": float(ratio.mean()),
                                         "median_ratio": float(np.median(ratio)),
                                         "mape": float(np.mean(np.abs(ratio - 1))),
                                         "over_fraction": float(np.mean(ratio > 1))})
    flows.append({"id": "rtc-alice-bob", "kind": "rtc", "from": "alice", "to": "bob",
                  "estimator": spec.estimator, "metrics": metrics,
                  "scores": {"network": _network_score(metrics)}})

    if spec.with_tcp:
        tcp = _tcp_series(t, capacity * 0.5, rng)
        tcp["capacity_bps"] = capacity
        write_csv(run_dir / "timeseries" / "tcp-alice-bob.csv", t, tcp)
        metrics = _basic_metrics(tcp, t >= TCP_START_S)
        metrics.update(loss=0.004, rtt_p50_ms=2 * BASE_DELAY_MS + 21.0,
                       rtt_p95_ms=2 * BASE_DELAY_MS + 48.0, rtt_p99_ms=2 * BASE_DELAY_MS + 55.0,
                       retransmits=37, recv_bytes=int(metrics["recv_rate_bps"] * 20 / 8))
        flows.append({"id": "tcp-alice-bob", "kind": "tcp", "from": "alice", "to": "bob",
                      "cc": "cubic", "metrics": metrics, "scores": {}})

    if spec.with_probe:
        probe = _probe_series(t, rng)
        probe["capacity_bps"] = np.full_like(t, PROBE_RATE_BPS)
        write_csv(run_dir / "timeseries" / "probe-router-bob-up.csv", t, probe)
        metrics = _basic_metrics(probe, t < 3.0)
        metrics.update(asked_rate_bps=PROBE_RATE_BPS, rtt_idle_ms=0.03)
        flows.append({"id": "probe-router-bob-up", "kind": "probe", "from": "router",
                      "to": "bob", "cc": "cubic", "metrics": metrics, "scores": {}})

    agents = ([{"host": "bob", "decisions": 1490, "misses": 3, "fallback_s": 0.06,
                "latency_us": {"p50": 180.0, "p99": 620.0, "p999": 1150.0}}]
              if spec.estimator == "policy" else [])
    results = {"netlab_version": "0.1.0", "kernel": "6.18.44", "backend": "kernel",
               "scenario": _scenario(spec), "started": 1.7e9, "ended": 1.7e9 + spec.duration_s,
               "flows": flows, "agents": agents, "fidelity": _fidelity(spec)}
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    return run_dir
