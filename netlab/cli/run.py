"""``netlab run FILE``: up, run for the duration, results, down — for scripts."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from netlab.cli._common import add_up_arguments, backend_arg, parse_subnet
from netlab.run.session import run_session
from netlab.scenario import load_scenario

NAME = "run"
HELP = "Build the lab, run its flows for the duration, write results and tear it down."


def configure(parser: argparse.ArgumentParser) -> None:
    add_up_arguments(parser)
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run the scenario N times and print the spread of every metric")


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.file)

    def once() -> Path:
        return run_session(scenario, backend=backend_arg(args.backend),
                           subnet=parse_subnet(args.subnet), out_base=args.out,
                           quiet=args.quiet, keep_up=False, plots=args.plots)

    if args.repeat != 1:
        from netlab.repeat import run_repeated

        run_repeated(args.repeat, once, Console())
        return 0
    once()
    return 0
