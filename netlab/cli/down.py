"""``netlab down NAME|--all``: remove exactly what a lab's journal recorded."""

from __future__ import annotations

import argparse

from rich.console import Console

from netlab.cli._common import lab_name_arg
from netlab.errors import NetlabError
from netlab.lab import lifecycle, state
from netlab.run.detach import finish

NAME = "down"
HELP = "Tear down a lab (or every lab with --all), removing only what it made."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="lab name (see 'netlab status')")
    parser.add_argument("--all", action="store_true", help="tear down every lab netlab knows of")
    parser.add_argument("--wait", type=float, default=lifecycle.OWNER_WAIT_S, metavar="SECONDS",
                        help="how long a foreground 'netlab up' of the lab may take to write "
                             "its results and remove the lab before down removes it "
                             f"(default {lifecycle.OWNER_WAIT_S:.0f})")


def run(args: argparse.Namespace) -> int:
    """Each lab under its lock; with --all, a lab that fails is reported and
    the others are still removed (exit 1 if any failed)."""
    console = Console(stderr=True, soft_wrap=True)
    if args.all == bool(args.name):
        raise NetlabError("give a lab name or --all (not both)", where="netlab down",
                          fix="netlab down NAME, or netlab down --all")
    if not args.all:
        _down(lab_name_arg(args.name, NAME), args.wait, console)
        return 0
    names = state.lab_names()
    failed = 0
    for name in names:
        try:
            _down(name, args.wait, console)
        except NetlabError as exc:
            failed += 1
            console.print(exc.render(), markup=False, highlight=False)
    if not names:
        console.print("no labs are up")
    return 1 if failed else 0


def _down(name: str, wait_s: float, console: Console) -> None:
    finish(name, console)  # a detached run writes its results first
    report = lifecycle.down(name, owner_wait_s=wait_s, waiting=lambda pid: console.print(
        f"lab {name} runs in the foreground ('netlab up', pid {pid}): asking it to write "
        "its results and end"))
    if report.gone:
        console.print(f"[green]down[/green] {name}: {report.gone}")
    else:
        console.print(f"[green]down[/green] {name}: removed {len(report.removed)} objects")
    for problem in report.problems:
        console.print(f"[yellow]warning[/yellow] {name}: {problem}", markup=True)
