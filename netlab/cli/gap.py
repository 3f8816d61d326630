"""``netlab gap CKPT SCENARIO...``: one policy, emulated and simulated, side by side."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netlab.cli._common import backend_arg

NAME = "gap"
HELP = ("Run each scenario in a lab and in the simulator with the same checkpoint and "
        "report receive rate, p95 delay, loss and score from both, and the difference.")

_SHOW = {"recv_rate_bps": ("receive rate (Mbit/s)", 1e-6, 3),
         "delay_p95_ms": ("delay p95 (ms)", 1.0, 1),
         "loss": ("loss (%)", 100.0, 2),
         "network_score": ("network score", 1.0, 2)}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="policy checkpoint the agent serves")
    parser.add_argument("scenarios", type=Path, nargs="+",
                        help="scenario files: one rtc flow with estimator: policy, a traced path")
    parser.add_argument("--backend", choices=("auto", "kernel", "user"), default="auto",
                        help="shaping backend of the emulated runs")
    parser.add_argument("--runs", type=Path, default=Path("runs"),
                        help="where the emulated runs' directories go (default ./runs)")
    parser.add_argument("--json", type=Path, default=Path("gap.json"),
                        help="write the comparison here (default gap.json)")


def _cell(value: float | None, scale: float, digits: int, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * scale:{'+' if signed else ''}.{digits}f}"


def run(args: argparse.Namespace) -> int:
    from netlab.learning.gap import gap
    from netlab.scenario import load_scenario
    from netlab.scenario.model import Scenario
    from netlab.session import run_session

    console = Console(stderr=True)
    scenarios = [load_scenario(path) for path in args.scenarios]

    def emulate(scenario: Scenario) -> Path:
        return run_session(scenario, backend=backend_arg(args.backend), subnet=None,
                           out_base=args.runs, quiet=True, keep_up=False)

    entries = gap(args.checkpoint, scenarios, emulate, report=console.print)
    args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "scenarios": entries},
                                    indent=1))
    table = Table(title=f"sim vs emulation: {args.checkpoint}")
    table.add_column("scenario")
    table.add_column("metric")
    for column in ("sim", "emulation", "emu − sim"):
        table.add_column(column, justify="right")
    for entry in entries:
        name = f"{Path(entry['scenario']).stem} ({entry['backend']})"
        for key, (label, scale, digits) in _SHOW.items():
            row = entry["compare"][key]
            table.add_row(name, label, _cell(row["sim"], scale, digits),
                          _cell(row["emulation"], scale, digits),
                          _cell(row["difference"], scale, digits, signed=True))
            name = ""
        for note in entry["notes"]:
            table.add_row("", f"[dim]note: {note}[/dim]", "", "", "")
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    console.print(f"written {args.json}")
    return 0
