"""``netlab vagrant ACTION``: a scenario across VMs on a stock kernel.

``up FILE`` brings the scenario's VMs up (one per host, a router folded into
a neighbour's VM), runs the scenario on them and leaves them up; ``up -d``
only brings them up.  ``run FILE`` runs on VMs that are up (bringing them up
first when needed) and, with ``--down``, destroys them after.  ``compare FILE
--repeat N`` runs it N times in namespaces and N times across VMs and reports
the difference with its interval.  ``down FILE|--all`` destroys one lab's VMs,
or every VM lab plus the libvirt objects netlab recorded, libvirt's daemons
and the namespace they ran in.  ``doctor`` lists what the VM path lacks here;
``box`` builds netlab's box.  Every command first checks what it needs
(:mod:`netlab.vagrant.doctor`) and names what is missing with its fix.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from netlab.cli._common import parse_subnet
from netlab.errors import NetlabError
from netlab.preflight import ProbeResult
from netlab.scenario import load_scenario
from netlab.vagrant import doctor
from netlab.vagrant.topology import DEFAULT_BOX, DEFAULT_MAX_VMS, DEFAULT_MEMORY_MB

if TYPE_CHECKING:
    from netlab.vagrant.orchestrate import VmOptions

NAME = "vagrant"
HELP = "Run a scenario across Vagrant VMs (stock kernel, real netem)."


def _vm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="scenario YAML file")
    parser.add_argument("--box", default=DEFAULT_BOX,
                        help=f"Vagrant box (default {DEFAULT_BOX}, built locally if missing)")
    parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB,
                        help=f"MB of RAM per VM (default {DEFAULT_MEMORY_MB})")
    parser.add_argument("--cpus", type=int, default=1, help="vCPUs per VM (default 1)")
    parser.add_argument("--driver", choices=("qemu", "kvm"), default="qemu",
                        help="libvirt driver: qemu (TCG, works everywhere) or kvm")
    parser.add_argument("--max-vms", type=int, default=DEFAULT_MAX_VMS,
                        help=f"refuse scenarios that need more VMs (default {DEFAULT_MAX_VMS})")
    parser.add_argument("--no-fold", action="store_true",
                        help="one VM per host, routers too (default: a host without "
                             "endpoints shares a neighbour's VM, in a namespace)")
    parser.add_argument("--subnet", help="private IPv4 range for the lab's addresses")
    parser.add_argument("--out", type=Path, default=Path("runs"),
                        help="where run directories are written (default ./runs)")
    parser.add_argument("-q", "--quiet", action="store_true", help="summary only")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vagrant_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="bring the VMs up, run the scenario, leave them up")
    _vm_arguments(up)
    up.add_argument("-d", "--detach", action="store_true", help="bring the VMs up only")
    run = sub.add_parser("run", help="run the scenario on its VMs (brought up if needed)")
    _vm_arguments(run)
    run.add_argument("--down", action="store_true", help="destroy the VMs afterwards")
    compare = sub.add_parser(
        "compare", help="N runs in namespaces and N across VMs: each flow's metrics with "
                        "95 %% intervals and the VM - namespace difference")
    _vm_arguments(compare)
    compare.add_argument("--repeat", type=int, default=3, metavar="N",
                         help="runs per side (default 3; at least 2 for an interval)")
    compare.add_argument("--tolerance", type=float, default=5.0, metavar="PCT",
                         help="agreement band in %% of the namespace mean (default 5)")
    compare.add_argument("--backend", choices=("auto", "kernel", "user"), default="auto",
                         help="the namespace side's shaping backend (as for 'netlab run')")
    compare.add_argument("--down", action="store_true", help="destroy the VMs afterwards")
    down = sub.add_parser("down", help="destroy a scenario's VMs (or everything with --all)")
    down.add_argument("file", type=Path, nargs="?", help="scenario YAML file")
    down.add_argument("--all", action="store_true",
                      help="every VM lab, the libvirt objects netlab made, its daemons and "
                           "namespace")
    sub.add_parser("status", help="VM labs and their VMs' states")
    check = sub.add_parser("doctor", help="what this machine lacks for VM labs, with each fix")
    check.add_argument("--box", default=DEFAULT_BOX,
                       help=f"box to look for (default {DEFAULT_BOX})")
    check.add_argument("--driver", choices=("qemu", "kvm"), default="qemu",
                       help="driver the VMs will use (kvm needs /dev/kvm)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    box = sub.add_parser("box", help=f"fetch the VMs' wheels and build {DEFAULT_BOX} if missing")
    box.add_argument("--rebuild", action="store_true", help="build it even if it is there")


def _options(args: argparse.Namespace) -> VmOptions:
    from netlab.vagrant.orchestrate import VmOptions

    return VmOptions(box=args.box, memory_mb=args.memory, cpus=args.cpus, driver=args.driver,
                     max_vms=args.max_vms, fold=not args.no_fold)


def _status_text(row: ProbeResult) -> Text:
    if row.ok:
        return Text("ok", style="green")
    return {"error": Text("MISSING", style="bold red"), "warning": Text("warn", style="yellow")
            }.get(row.severity, Text("no", style="dim"))


def run_doctor(args: argparse.Namespace) -> int:
    rows = doctor.checks("doctor", box=args.box, driver=args.driver)
    failed = [row for row in rows if row.failed]
    if args.json:
        print(json.dumps({"ready": not failed, "results": [asdict(row) for row in rows],
                          "packages": doctor.apt_packages()}, indent=1))
        return 1 if failed else 0
    table = Table(title="netlab vagrant doctor: what VM labs need on this machine")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.name, _status_text(row), row.detail, row.fix or "")
    console = Console()
    console.print(table)
    missing_tools = [row for row in failed if row.name.startswith(("tool ", "file "))]
    if missing_tools:
        merged = doctor.merge_tools(missing_tools)[0]
        console.print(f"every missing tool at once: {merged.fix}", highlight=False,
                      soft_wrap=True)  # one line to copy
    if failed:
        console.print(f"[bold red]VM labs cannot run here yet: {len(failed)} thing(s) missing "
                      "(the MISSING rows)[/]")
        return 1
    console.print("[green]this machine can run VM labs[/green] (netlab vagrant up SCENARIO)")
    return 0


def run_box(args: argparse.Namespace) -> int:
    from netlab.vagrant import orchestrate

    console = Console(stderr=True)
    wheels = orchestrate.ensure_wheels()
    console.print(f"wheels for the VMs: {wheels}")
    built = orchestrate.ensure_box(orchestrate.VmOptions(), rebuild=args.rebuild)
    console.print(f"box {DEFAULT_BOX}: " + ("present" if built is None
                                           else f"built in {built:.0f} s"))
    return 0


def _preflight(args: argparse.Namespace) -> None:
    """What the command needs, checked before it starts anything."""
    command = args.vagrant_command
    if command in ("up", "run", "compare"):
        doctor.require(command, box=args.box, driver=args.driver, memory_mb=args.memory,
                       vms=None)
    elif command in ("down", "status", "box"):
        doctor.require(command)


def run(args: argparse.Namespace) -> int:
    if args.vagrant_command == "doctor":
        return run_doctor(args)
    _preflight(args)
    if args.vagrant_command == "box":
        return run_box(args)
    from netlab.vagrant import orchestrate

    console = Console(stderr=True, quiet=getattr(args, "quiet", False))
    if args.vagrant_command == "status":
        print(json.dumps(orchestrate.status(), indent=1))
        return 0
    if args.vagrant_command == "down":
        if args.all:
            removed = orchestrate.down_all()
        elif args.file is not None:
            removed = orchestrate.down(load_scenario(args.file).name)
        else:
            raise NetlabError("say which VM lab to remove", where="netlab vagrant down",
                              fix="give the scenario file, or --all")
        for item in removed:
            console.print(f"removed {item}")
        return 0
    scenario = load_scenario(args.file)
    if args.vagrant_command == "compare":
        from netlab.vagrant.compare import compare

        compare(scenario, args.repeat, _options(args), subnet=parse_subnet(args.subnet),
                out_base=args.out, backend=args.backend, tolerance=args.tolerance / 100,
                down_after=args.down, log=sys.stderr,
                console=Console(width=None if sys.stdout.isatty() else 200))
        return 0
    lab = None
    if args.vagrant_command == "run":
        try:
            lab = orchestrate.VmLab.load(scenario.name)
        except NetlabError:
            lab = None
    if lab is None:
        lab, timings = orchestrate.up(scenario, _options(args), parse_subnet(args.subnet))
        for name, seconds in timings.items():
            console.print(f"{name}: {seconds:.1f}")
        console.print(f"[green]up[/green] {lab.lab}: VMs {', '.join(lab.vm_names)}")
    if args.vagrant_command == "up" and args.detach:
        return 0
    try:
        run_dir = orchestrate.run(lab, scenario, args.out, log=sys.stderr)
        from netlab.run.summary import print_summary

        results = json.loads((run_dir / "results.json").read_text())
        print_summary(results, run_dir, Console(width=None if
                                                sys.stdout.isatty() else 120))
    finally:
        if args.vagrant_command == "run" and args.down:
            for item in orchestrate.down(scenario.name):
                console.print(f"removed {item}")
    return 0
