"""The summary table printed when a run ends (from its results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: object, scale: float = 1.0, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    assert isinstance(value, int | float)
    return f"{value * scale:.{digits}f}{unit}"


def _exit(code: object) -> str:
    """An exit status as a user reads it: a number, a signal, or still running."""
    if code is None:
        return "-"
    assert isinstance(code, int)
    return f"signal {-code}" if code < 0 else str(code)


def print_summary(results: dict[str, Any], run_dir: Path, console: Console) -> None:
    table = Table(title=f"{results['scenario']['name']}: flows ({results['backend']} shaping)")
    table.add_column("flow", no_wrap=True)
    table.add_column("where", no_wrap=True)
    for column in ("rate Mbit/s", "asked Mbit/s", "delay p50 ms", "delay p95 ms", "loss %",
                   "score"):
        table.add_column(column, justify="right")
    failed = []
    for flow in results["flows"]:
        m = flow["metrics"]
        if "host" in flow:  # a command: its exit, and the lab's figures when it captured them
            where = f"in {flow['host']}, exit {_exit(flow.get('exit_code'))}"
            if flow.get("exit_code") not in (0, None):
                failed.append(flow)
        else:
            where = f"{flow['from']} → {flow['to']}"
        table.add_row(flow["id"], where,
                      _fmt(m.get("recv_rate_bps"), 1e-6), _fmt(m.get("asked_rate_bps"), 1e-6),
                      _fmt(m.get("delay_p50_ms")), _fmt(m.get("delay_p95_ms")),
                      _fmt(m.get("loss"), 100, "", 1),
                      _fmt(flow.get("scores", {}).get("network"), 1, "", 1))
    console.print(table)
    for flow in failed:
        console.print(f"[red]flow {flow['id']}: {' '.join(flow['argv'])} exited with "
                      f"{_exit(flow['exit_code'])}[/red]; its output: {flow.get('stderr')}",
                      markup=True, highlight=False)
    for flow in results["flows"]:
        m = flow["metrics"]
        if m.get("receiver_error"):
            console.print(f"[red]flow {flow['id']}: the receiver stopped: "
                          f"{m['receiver_error']}[/] (traceback in "
                          f"{flow.get('logs', '')}/receiver/receiver.out)")
        plugin = m.get("plugin")
        if plugin:
            slow = sum(plugin[k]["over_budget"] for k in ("report_states",
                                                           "get_estimated_bandwidth"))
            calls = sum(plugin[k]["calls"] for k in ("report_states", "get_estimated_bandwidth"))
            console.print(f"flow {flow['id']}: plugin loaded in {plugin['load_s']:.2f} s; "
                          f"{slow} of {calls} calls over "
                          f"{plugin['report_states']['budget_ms']:g} ms")
    fidelity = results["fidelity"]
    for verdict in fidelity.get("verdicts", []):
        console.print(f"[{'green' if fidelity['faithful'] else 'red'}]{verdict}[/]")
    console.print(f"results: {run_dir / 'results.json'}")
