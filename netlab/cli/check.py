"""``netlab check LAB``: reachability and RTT of every host pair vs the plan;
with ``--rate``, the link probe's goodput per link direction (it sends traffic,
so only when asked)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from netlab.errors import NetlabError
from netlab.lab import state
from netlab.lab.plan import plan_from_json
from netlab.probes.links import WIRE_GOODPUT, ProbeMeasurement, probe_links
from netlab.probes.reachability import check_all_pairs

NAME = "check"
HELP = ("Measure reachability and RTT between every host pair and compare with the links; "
        "--rate also measures each link direction's rate.")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab")
    parser.add_argument("--count", type=int, default=10, help="echo requests per pair")
    parser.add_argument("--rate", action="store_true",
                        help="also measure what each link direction delivers: a TCP bulk "
                             "transfer through it in turn (this sends traffic)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="with --rate: seconds of bulk transfer per link direction")
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    lab = state.load(args.lab)
    if lab is None or not lab.plan:
        raise NetlabError(f"no lab named '{args.lab}' is up", where="netlab check",
                          fix="'netlab status' lists the labs that are up")
    plan = plan_from_json(lab.plan)
    checks = check_all_pairs(plan, count=args.count)
    rates = probe_links(plan, args.seconds * 2 * len(plan.links)) if args.rate else []
    if args.json:
        out: object = [c.__dict__ | {"ok": c.ok} for c in checks]
        if args.rate:
            out = {"pairs": out, "rates": [_rate_json(m) for m in rates]}
        print(json.dumps(out, indent=1))
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
        if rates:
            Console().print(_rate_table(args.lab, rates))
    return 0 if all(c.ok for c in checks) else 1


def _rate_json(m: ProbeMeasurement) -> dict[str, object]:
    return {"link": m.link, "direction": m.direction, "from": m.src, "to": m.dst,
            "asked_rate_bps": m.asked_rate_bps, "goodput_bps": m.recv_rate_bps,
            "goodput_over_rate": m.recv_rate_bps / m.asked_rate_bps if m.asked_rate_bps else None,
            "one_way_p50_ms": m.percentile_ms(0.5)}


def _rate_table(lab: str, rates: list[ProbeMeasurement]) -> Table:
    """TCP goodput is at most 1448/1514 of a link's rate (headers of full frames)."""
    table = Table(title=f"lab {lab}: link rates (TCP goodput; at most {WIRE_GOODPUT:.3f} of "
                        f"the rate)")
    for column in ("link", "direction", "asked", "goodput", "goodput/rate"):
        table.add_column(column)
    for m in rates:
        asked = f"{m.asked_rate_bps / 1e6:.3g} Mbit/s" if m.asked_rate_bps else "unshaped"
        share = f"{m.recv_rate_bps / m.asked_rate_bps:.3f}" if m.asked_rate_bps else "-"
        table.add_row(m.link, f"{m.direction} ({m.src} → {m.dst})", asked,
                      f"{m.recv_rate_bps / 1e6:.3g} Mbit/s", share)
    return table
