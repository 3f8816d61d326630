"""``netlab report RUN_DIR...``: tables of finished runs; with several, a comparison."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from rich.console import Console

from netlab.run.plots import plot_run
from netlab.run.report import COMPARISON_FILE, load_runs, print_report, report_json

NAME = "report"
HELP = ("Show the flows, scores and fidelity verdict of finished runs; with several runs, "
        "compare them and draw a throughput vs delay plot.")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run directories (each holds results.json), e.g. runs/*")
    parser.add_argument("--out", type=Path, default=Path("."),
                        help=f"where {COMPARISON_FILE} is written (default: current directory)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON instead of tables")
    parser.add_argument("--plots", action="store_true",
                        help="also (re)draw each run's per-flow plots into RUN_DIR/plots")


def run(args: argparse.Namespace) -> int:
    runs = load_runs(args.run_dirs)
    redrawn = [path for one in runs for path in plot_run(one.path)] if args.plots else []
    comparison_out = args.out / COMPARISON_FILE
    if args.json:
        # the comparison plot is still drawn; the tables go nowhere
        quiet = Console(file=io.StringIO())
        plot = print_report(runs, quiet, comparison_out)
        data = report_json(runs, plot)
        if args.plots:
            data["plots"] = [str(path) for path in redrawn]
        print(json.dumps(data, indent=1))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 140)  # files and pipes get room
    print_report(runs, console, comparison_out)
    for path in redrawn:
        console.print(f"plot: {path}")
    return 0
