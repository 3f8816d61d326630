"""Was the host the cause?  The VMs' vCPU threads and the host's CPUs over a VM run.

Under QEMU TCG a guest's vCPU is one host thread (``CPU 0/TCG``); when it
waits on a host run queue, the guest's clock runs on but nothing in it
does, so a replayer wakes late and packets leave late without the guest
seeing why (TCG guests get no steal-time counter).  The host's own
counters for those threads (:mod:`netlab.vagrant.vcpus`;
``/proc/TID/schedstat``, as for a namespace lab's link processes in
:mod:`shaping.fidelity.machine`) say it; the
guests' counters (``node/<vm>.json``, from :mod:`netlab.vagrant.node`) say
what happened inside.  Both go into the run's fidelity verdict.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from shaping.fidelity.machine import MachineLoad, MachineSnapshot, machine_load, snapshot

__all__ = ["combined", "guest_loads", "host_snapshot", "machine_load"]

def host_snapshot(threads: dict[int, str]) -> MachineSnapshot:
    return snapshot(threads)


def guest_loads(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Each VM's ``node/<vm>.json`` as its node wrote it (absent: that node wrote none)."""
    found = {}
    for path in sorted((run_dir / "node").glob("*.json")):
        found[path.stem] = json.loads(path.read_text())
    return found


def combined(before: MachineSnapshot, after: MachineSnapshot,
             guests: dict[str, dict[str, Any]]) -> MachineLoad:
    """The host's load with the guests' causes added, each naming its VM."""
    host = machine_load(before, after)
    causes = list(host.causes)
    for vm, report in guests.items():
        causes += [f"in VM {vm}: {cause}"
                   for cause in (report.get("machine") or {}).get("causes", [])]
    return replace(host, causes=causes)
