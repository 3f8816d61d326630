"""``netlab run FILE``: up, run for the duration, results, down — for scripts."""

from __future__ import annotations

import argparse

from netlab.cli._common import add_up_arguments, backend_arg, parse_subnet
from netlab.scenario import load_scenario
from netlab.session import run_session

NAME = "run"
HELP = "Build the lab, run its flows for the duration, write results and tear it down."


def configure(parser: argparse.ArgumentParser) -> None:
    add_up_arguments(parser)


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.file)
    run_session(scenario, backend=backend_arg(args.backend), subnet=parse_subnet(args.subnet),
                out_base=args.out, quiet=args.quiet, keep_up=False)
    return 0
