"""``netlab vagrant up|run|down|status``: a scenario across VMs on a stock kernel.

``up FILE`` brings the scenario's VMs up (one per host), runs the scenario on
them and leaves them up; ``up -d`` only brings them up.  ``run FILE`` runs on
VMs that are up (bringing them up first when needed) and, with ``--down``,
destroys them after.  ``down FILE|--all`` destroys one lab's VMs, or every
VM lab plus libvirt's daemons and the namespace they ran in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from netlab.cli._common import parse_subnet
from netlab.errors import NetlabError
from netlab.results import print_summary
from netlab.scenario import load_scenario
from netlab.vagrant import orchestrate
from netlab.vagrant.topology import DEFAULT_BOX, DEFAULT_MAX_VMS, DEFAULT_MEMORY_MB

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
                        help=f"refuse scenarios with more hosts (default {DEFAULT_MAX_VMS})")
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
    down = sub.add_parser("down", help="destroy a scenario's VMs (or everything with --all)")
    down.add_argument("file", type=Path, nargs="?", help="scenario YAML file")
    down.add_argument("--all", action="store_true",
                      help="every VM lab, libvirt's definitions, its daemons and namespace")
    sub.add_parser("status", help="VM labs and their VMs' states")


def _options(args: argparse.Namespace) -> orchestrate.VmOptions:
    return orchestrate.VmOptions(box=args.box, memory_mb=args.memory, cpus=args.cpus,
                                 driver=args.driver, max_vms=args.max_vms)


def run(args: argparse.Namespace) -> int:
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
        console.print(f"[green]up[/green] {lab.lab}: VMs {', '.join(lab.plan.hosts)}")
    if args.vagrant_command == "up" and args.detach:
        return 0
    try:
        run_dir = orchestrate.run(lab, scenario, args.out, log=sys.stderr)
        results = json.loads((run_dir / "results.json").read_text())
        print_summary(results, run_dir, Console(width=None if
                                                sys.stdout.isatty() else 120))
    finally:
        if args.vagrant_command == "run" and args.down:
            for item in orchestrate.down(scenario.name):
                console.print(f"removed {item}")
    return 0
