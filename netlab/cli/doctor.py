"""``netlab doctor``: can this machine run labs, and what to do where it cannot.

Probes the kernel afresh (never from the cache: after a ``modprobe`` the
user wants the new answer) and prints every probe with its fix.  Exit
status 0 means labs can run here; warnings do not change it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from rich.console import Console
from rich.table import Table
from rich.text import Text

from netlab.preflight import ProbeResult, machine_report, probe_kernel

NAME = "doctor"
HELP = "Probe this machine (privileges, qdiscs, TUN, TCP congestion controls) and say what to fix."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--cached",
        action="store_true",
        help="reuse the cached kernel probe instead of probing again",
    )


def _status(result: ProbeResult) -> Text:
    if result.ok:
        return Text("ok", style="green")
    if result.severity == "error":
        return Text("FAIL", style="bold red")
    if result.severity == "warning":
        return Text("warn", style="yellow")
    return Text("no", style="dim")


def run(args: argparse.Namespace) -> int:
    caps = probe_kernel(refresh=not args.cached)
    results = machine_report(caps)
    can_run = not any(result.failed for result in results)
    if args.json:
        print(
            json.dumps(
                {
                    "can_run_labs": can_run,
                    "kernel": caps.kernel_release,
                    "probe_seconds": round(caps.probe_seconds, 4),
                    "from_cache": caps.from_cache,
                    "capabilities": caps.to_json(),
                    "results": [asdict(result) for result in results],
                },
                indent=1,
            )
        )
        return 0 if can_run else 1
    if not caps.probed:
        how = "not probed"
    elif caps.from_cache:
        how = f"cached probe, {caps.probe_seconds * 1e3:.0f} ms when made"
    else:
        how = f"probed in {caps.probe_seconds * 1e3:.0f} ms"
    table = Table(title=f"netlab doctor: kernel {caps.kernel_release} ({how})")
    for column in ("probe", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for result in results:
        table.add_row(result.name, _status(result), result.detail, result.fix or "")
    console = Console()
    console.print(table)
    if can_run:
        console.print("[green]this machine can run netlab labs[/green]")
    else:
        failed = sum(result.failed for result in results)
        console.print(f"[bold red]labs cannot run here yet: fix the {failed} FAIL row(s)[/]")
    return 0 if can_run else 1
