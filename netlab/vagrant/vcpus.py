"""The VMs' vCPU threads on the host: found by name, and on the priority ladder for a run.

Under QEMU TCG each guest vCPU is one host thread (``CPU 0/TCG``), and
everything timed in a VM run happens on one: the guest's NICs, its qdiscs,
netem's timers, the replayer.  A namespace lab runs its links and replayers
on the ladder's shaping rung (:mod:`labcore.priority`); a VM lab's
equivalent is its vCPUs.  SCHED_FIFO is out of the question for a thread
that runs flat out whenever its guest is busy (it would take the host's
cores from everything, the driver's SSH sessions included), so they get the
shaping rung's nice value for the run, and their own back after it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from labcore.priority import SHAPING

QEMU_PIDS = Path("/run/libvirt/qemu")


def vcpu_threads(domain: str, pid_dir: Path = QEMU_PIDS) -> dict[int, str]:
    """tid -> ``CPU n/TCG`` (or ``/KVM``) of one libvirt domain's QEMU; empty if not running."""
    try:
        pid = int((pid_dir / f"{domain}.pid").read_text().strip())
    except (OSError, ValueError):
        return {}
    threads = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith("CPU ") and "/" in name:
            threads[int(task.name)] = name
    return threads


def lab_threads(prefix: str, vms: list[str]) -> dict[int, str]:
    """Every vCPU thread of the lab's VMs, named ``VM <name> <thread> (qemu)``."""
    return {tid: f"VM {vm} {name} (qemu)" for vm in vms
            for tid, name in vcpu_threads(f"{prefix}{vm}").items()}


@contextlib.contextmanager
def raised(threads: dict[int, str], nice: int = SHAPING.nice) -> Iterator[dict[str, int | None]]:
    """Each thread at ``nice`` while the block runs, then back to its own value.

    Yields role -> the nice value it got (None: refused or gone), for the results."""
    before: dict[int, int] = {}
    got: dict[str, int | None] = {}
    for tid, role in threads.items():
        try:
            before[tid] = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, nice)
            got[role] = nice
        except OSError:
            got[role] = None
    try:
        yield got
    finally:
        for tid, value in before.items():
            with contextlib.suppress(OSError):  # a VM destroyed meanwhile
                os.setpriority(os.PRIO_PROCESS, tid, value)
