"""results.json and the printed summary: the contract scripts rely on.

Keys named in DESIGN.md's results contract are never renamed; new keys may
be added beside them.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from netlab import __version__
from netlab.scenario.model import Scenario


def scenario_as_json(scenario: Scenario) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(scenario), default=str))
    return data


def new_run_dir(base: Path, lab: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = base / f"{lab}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = base / f"{lab}-{stamp}-{suffix}"
    path.mkdir(parents=True)
    return path


def build_results(scenario: Scenario, backend: str, flows: list[dict[str, Any]],
                  fidelity: dict[str, Any], *, started: float, ended: float) -> dict[str, Any]:
    return {
        "netlab_version": __version__,
        "kernel": platform.release(),
        "backend": backend,
        "scenario": scenario_as_json(scenario),
        "started": started,
        "ended": ended,
        "flows": flows,
        "agents": [],
        "fidelity": fidelity,
    }


def write_results(run_dir: Path, results: dict[str, Any]) -> Path:
    path = run_dir / "results.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    (run_dir / "fidelity.json").write_text(json.dumps(results["fidelity"], indent=1))
    return path


def _fmt(value: object, scale: float = 1.0, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    assert isinstance(value, int | float)
    return f"{value * scale:.{digits}f}{unit}"


def print_summary(results: dict[str, Any], run_dir: Path, console: Console) -> None:
    table = Table(title=f"{results['scenario']['name']}: flows ({results['backend']} shaping)")
    table.add_column("flow", no_wrap=True)
    table.add_column("from → to", no_wrap=True)
    for column in ("rate Mbit/s", "asked Mbit/s", "delay p50 ms", "delay p95 ms", "loss %",
                   "score"):
        table.add_column(column, justify="right")
    for flow in results["flows"]:
        m = flow["metrics"]
        table.add_row(flow["id"], f"{flow['from']} → {flow['to']}",
                      _fmt(m["recv_rate_bps"], 1e-6), _fmt(m.get("asked_rate_bps"), 1e-6),
                      _fmt(m["delay_p50_ms"]), _fmt(m["delay_p95_ms"]),
                      _fmt(m["loss"], 100, "", 1),
                      _fmt(flow.get("scores", {}).get("network"), 1, "", 1))
    console.print(table)
    fidelity = results["fidelity"]
    for verdict in fidelity.get("verdicts", []):
        console.print(f"[{'green' if fidelity['faithful'] else 'red'}]{verdict}[/]")
    console.print(f"results: {run_dir / 'results.json'}")
