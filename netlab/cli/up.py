"""``netlab up FILE``: build a lab; run its flows in the foreground and leave
it up for inspection (docker compose's habit), or ``-d`` to detach at once."""

from __future__ import annotations

import argparse

from rich.console import Console

from netlab.cli._common import add_up_arguments, backend_arg, parse_subnet
from netlab.lab import lifecycle
from netlab.lab.plan import plan_lab
from netlab.lab.shaping import describe_shaping
from netlab.preflight import (
    choose_backend,
    choose_subnet,
    probe_kernel,
    raise_on_failures,
    run_preflight,
)
from netlab.scenario import load_scenario
from netlab.session import run_session

NAME = "up"
HELP = "Build a lab from a scenario, run its flows and leave it up until 'netlab down'."


def configure(parser: argparse.ArgumentParser) -> None:
    add_up_arguments(parser)
    parser.add_argument("-d", "--detach", action="store_true",
                        help="return as soon as the lab is built, without running flows")
    parser.add_argument("--dry-run", action="store_true",
                        help="print every object the lab would make, make nothing")


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.file)
    subnet = parse_subnet(args.subnet)
    if args.dry_run:
        caps = probe_kernel()
        raise_on_failures(run_preflight(scenario, caps, backend=backend_arg(args.backend)))
        backend = choose_backend(scenario, caps, backend_arg(args.backend))
        plan = plan_lab(scenario, subnet or scenario.subnet or choose_subnet(scenario.name))
        print(f"# {scenario.name}: {backend} shaping; nothing below is made (--dry-run)")
        print("\n".join(plan.describe() + describe_shaping(plan, backend, caps)))
        return 0
    if args.detach:
        lab = lifecycle.up(scenario, backend=backend_arg(args.backend), subnet=subnet)
        lab.shaping.release()
        Console(stderr=True, quiet=args.quiet).print(
            f"[green]up[/green] {lab.name} ({len(lab.plan.hosts)} hosts, {lab.backend} shaping); "
            f"'netlab down {lab.name}' removes it")
        return 0
    run_session(scenario, backend=backend_arg(args.backend), subnet=subnet,
                out_base=args.out, quiet=args.quiet, keep_up=True)
    return 0
