"""``netlab up FILE``: build a lab; run its flows in the foreground and leave
it up for inspection (docker compose's habit), or ``-d`` to run them detached."""

from __future__ import annotations

import argparse

from rich.console import Console

from netlab.cli._common import add_up_arguments, backend_arg, parse_subnet
from netlab.lab.backends import choose_link_backends
from netlab.lab.plan import plan_lab
from netlab.lab.shaping import describe_shaping
from netlab.preflight import (
    choose_backend,
    choose_subnet,
    probe_kernel,
    raise_on_failures,
    run_preflight,
)
from netlab.run.detach import launch
from netlab.run.session import run_session
from netlab.scenario import load_scenario

NAME = "up"
HELP = "Build a lab from a scenario, run its flows and leave it up until 'netlab down'."


def configure(parser: argparse.ArgumentParser) -> None:
    add_up_arguments(parser)
    parser.add_argument("-d", "--detach", action="store_true",
                        help="return once everything has started; flows, trace replays and "
                             "links keep running until 'netlab down' (results when the flows "
                             "end, and at down)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print every object the lab would make, make nothing")


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.file)
    subnet = parse_subnet(args.subnet)
    if args.dry_run:
        caps = probe_kernel()
        raise_on_failures(run_preflight(scenario, caps, backend=backend_arg(args.backend),
                                        subnet=subnet))
        backend = choose_backend(scenario, caps, backend_arg(args.backend))
        plan = plan_lab(scenario, subnet or scenario.subnet or choose_subnet(scenario.name))
        choice = choose_link_backends(scenario, plan, backend, backend_arg(args.backend), caps)
        print(f"# {scenario.name}: {backend} shaping; nothing below is made (--dry-run)")
        for shown in choice.shown():
            print(f"# link {shown.link} ({shown.direction}): {shown.reason}")
        print("\n".join(plan.describe() + describe_shaping(plan, choice, caps)))
        return 0
    if args.detach:
        launch(args.file, backend=backend_arg(args.backend), subnet=subnet, out_base=args.out,
               console=Console(stderr=True, quiet=args.quiet), plots=args.plots)
        return 0
    run_session(scenario, backend=backend_arg(args.backend), subnet=subnet,
                out_base=args.out, quiet=args.quiet, keep_up=True, plots=args.plots)
    return 0
