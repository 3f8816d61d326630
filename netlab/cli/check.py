"""``netlab check LAB``: reachability and RTT of every host pair vs the plan."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from netlab.errors import NetlabError
from netlab.lab import state
from netlab.lab.plan import plan_from_json
from netlab.probes.reachability import check_all_pairs

NAME = "check"
HELP = "Measure reachability and RTT between every host pair and compare with the links."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab")
    parser.add_argument("--count", type=int, default=10, help="echo requests per pair")
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    lab = state.load(args.lab)
    if lab is None or not lab.plan:
        raise NetlabError(f"no lab named '{args.lab}' is up", where="netlab check",
                          fix="'netlab status' lists the labs that are up")
    checks = check_all_pairs(plan_from_json(lab.plan), count=args.count)
    if args.json:
        print(json.dumps([c.__dict__ | {"ok": c.ok} for c in checks], indent=1))
    else:
        table = Table(title=f"lab {args.lab}: host pairs")
        for column in ("from", "to", "address", "received", "rtt p50", "expected", "verdict"):
            table.add_column(column)
        for c in checks:
            rtt = f"{c.rtt_p50_s * 1e3:.2f} ms" if c.rtt_p50_s is not None else "-"
            verdict = "[green]ok[/green]" if c.ok else (
                "[red]unreachable[/red]" if not c.received else "[red]off[/red]")
            table.add_row(c.src, c.dst, c.address, f"{c.received}/{c.sent}", rtt,
                          f"{c.expected_rtt_s * 1e3:.2f} ms", verdict)
        Console().print(table)
    return 0 if all(c.ok for c in checks) else 1
