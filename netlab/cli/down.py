"""``netlab down NAME|--all``: remove exactly what a lab's journal recorded."""

from __future__ import annotations

import argparse

from rich.console import Console

from netlab.errors import NetlabError
from netlab.lab import lifecycle, state

NAME = "down"
HELP = "Tear down a lab (or every lab with --all), removing only what it made."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="lab name (see 'netlab status')")
    parser.add_argument("--all", action="store_true", help="tear down every lab netlab knows of")


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.all == bool(args.name):
        raise NetlabError("give a lab name or --all (not both)", where="netlab down",
                          fix="netlab down NAME, or netlab down --all")
    names = [s.lab for s in state.all_labs()] if args.all else [args.name]
    for name in names:
        report = lifecycle.down(name)
        console.print(f"[green]down[/green] {name}: removed {len(report.removed)} objects")
        for problem in report.problems:
            console.print(f"[yellow]warning[/yellow] {name}: {problem}")
    if args.all and not names:
        console.print("no labs are up")
    return 0
