"""``netlab status``: the labs that are up, from their journals."""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.table import Table

from netlab.lab import netns, state

NAME = "status"
HELP = "List labs: hosts, links, shaping backend, age and owner process."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _health(lab: state.LabState) -> str:
    present = sum(netns.exists(ns) for ns in lab.namespaces)
    if present == len(lab.namespaces) and lab.status == "up":
        return "up"
    if present == 0:
        return "stale (nothing left; 'netlab down' clears it)"
    return f"{lab.status} ({present}/{len(lab.namespaces)} namespaces)"


def _unreadable() -> list[str]:
    """Labs whose state file can not be read (``netlab down`` says what to do)."""
    names = []
    for name in state.lab_names():
        try:
            state.load(name)
        except state.StateGarbled:
            names.append(name)
    return names


def run(args: argparse.Namespace) -> int:
    labs = state.all_labs()
    garbled = _unreadable()
    now = time.time()
    if args.json:
        print(json.dumps([
            {"lab": s.lab, "health": _health(s), "instance": s.instance,
             "owner_pid": s.owner_pid, "owner_alive": s.owner_alive(),
             "age_s": round(now - s.created, 1),
             "backend": s.backend, "subnet": s.subnet, "hosts": s.hosts, "links": s.links}
            for s in labs] + [{"lab": name, "health": "unreadable state ('netlab down "
                               f"{name}' says what to do)"} for name in garbled], indent=1))
        return 0
    table = Table(title="netlab labs")
    for column in ("lab", "state", "hosts", "links", "shaping", "subnet", "age", "owner pid"):
        table.add_column(column)
    for s in labs:
        owner = f"{s.owner_pid}" + ("" if s.owner_alive() else " (exited)")
        table.add_row(s.lab, _health(s), ", ".join(s.hosts), str(len(s.links)),
                      s.backend or "-", s.subnet or "-", f"{now - s.created:.0f}s", owner)
    for name in garbled:
        table.add_row(name, f"unreadable state ('netlab down {name}' says what to do)",
                      "-", "-", "-", "-", "-", "-")
    Console().print(table if labs or garbled else "no labs are up")
    return 0
