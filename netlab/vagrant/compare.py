"""``netlab vagrant compare``: N namespace runs, then N VM runs, then their agreement.

The namespace runs go first, before any VM exists: idle QEMU TCG guests
still take CPU from the namespace lab's links.  The VM runs follow on VMs
brought up once.  Everything lands in one folder: ``namespace/`` and ``vm/``
run directories, ``compare.json`` and ``compare.txt`` (the table).
"""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path
from typing import IO

from rich.console import Console

from netlab.errors import NetlabError
from netlab.scenario.model import Scenario
from netlab.vagrant import agreement, orchestrate


def compare(scenario: Scenario, repeat: int, options: orchestrate.VmOptions, *,
            subnet: ipaddress.IPv4Network | None, out_base: Path, backend: str,
            tolerance: float, down_after: bool, console: Console,
            log: IO[str] | None = None) -> Path:
    """Run both sides ``repeat`` times, write the report; returns its folder."""
    from netlab.cli._common import backend_arg
    from netlab.run.session import run_session

    if repeat < 1:
        raise NetlabError(f"--repeat {repeat} asks for no run", where="--repeat",
                          fix="give --repeat N with N >= 2 (an interval needs two runs a side)")
    folder = out_base / f"{scenario.name}-compare-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=False)
    started = time.monotonic()
    timings: dict[str, float] = {}
    namespace_dirs: list[Path] = []
    for index in range(repeat):
        console.print(f"[bold]namespace run {index + 1} of {repeat}[/bold]")
        namespace_dirs.append(run_session(scenario, backend=backend_arg(backend), subnet=subnet,
                                          out_base=folder / "namespace", quiet=True,
                                          keep_up=False))
    timings["namespace_runs_s"] = time.monotonic() - started
    vm_dirs: list[Path] = []
    try:
        try:
            lab = orchestrate.VmLab.load(scenario.name)
        except NetlabError:
            up_started = time.monotonic()
            console.print("[bold]bringing the VMs up[/bold]")
            lab, up_timings = orchestrate.up(scenario, options, subnet)
            timings.update(up_timings)
            timings["up_s"] = time.monotonic() - up_started
        vm_started = time.monotonic()
        for index in range(repeat):
            console.print(f"[bold]VM run {index + 1} of {repeat}[/bold]")
            vm_dirs.append(orchestrate.run(lab, scenario, folder / "vm", log=log))
        timings["vm_runs_s"] = time.monotonic() - vm_started
    finally:
        if down_after:
            for item in orchestrate.down(scenario.name):
                console.print(f"removed {item}")
    timings["total_s"] = time.monotonic() - started
    return write_report(folder, scenario.name, namespace_dirs, vm_dirs, tolerance=tolerance,
                        console=console, timings=timings)


def write_report(folder: Path, scenario: str, namespace_dirs: list[Path], vm_dirs: list[Path],
                 *, tolerance: float, console: Console,
                 timings: dict[str, float] | None = None) -> Path:
    """Read both sides' results, print the table, write ``compare.json`` and ``compare.txt``."""
    namespace = [json.loads((d / "results.json").read_text()) for d in namespace_dirs]
    vm = [json.loads((d / "results.json").read_text()) for d in vm_dirs]
    rows = agreement.compare_results(namespace, vm, tolerance=tolerance)
    report = agreement.report_json(
        rows, scenario=scenario, tolerance=tolerance,
        namespace_runs=[str(d) for d in namespace_dirs], vm_runs=[str(d) for d in vm_dirs],
        fidelity={"namespace": agreement.fidelity_summary(namespace),
                  "vm": agreement.fidelity_summary(vm)})
    report["timings_s"] = timings or {}
    (folder / "compare.json").write_text(json.dumps(report, indent=1) + "\n")
    table = agreement.agreement_table(rows, runs=(len(namespace), len(vm)), tolerance=tolerance)
    console.print(table)
    with open(folder / "compare.txt", "w") as text:
        Console(file=text, width=200, no_color=True).print(table)
    for side in ("namespace", "vm"):
        summary = report["fidelity"][side]
        console.print(f"{side}: {summary['faithful']} of {summary['runs']} runs faithful")
        for causes in summary["machine_causes"]:
            if causes:
                console.print(f"  machine: {'; '.join(causes)}", highlight=False)
    console.print(f"report: {folder / 'compare.json'}")
    return folder
