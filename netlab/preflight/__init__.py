"""Preflight: what the kernel can do, and whether a scenario can run here.

``probe_kernel`` asks the kernel (cached per process and per boot),
``run_preflight`` checks one scenario against it and the machine, and
``raise_on_failures`` turns the failed probes into one error that lists
each with what, where and the fix -- before anything is created.
"""

from __future__ import annotations

from netlab.preflight.addresses import address_collisions, choose_subnet
from netlab.preflight.capabilities import KernelCapabilities, probe_kernel
from netlab.preflight.checks import (
    Backend,
    PreflightError,
    ProbeResult,
    Severity,
    choose_backend,
    machine_report,
    raise_on_failures,
    run_preflight,
)

__all__ = [
    "Backend",
    "KernelCapabilities",
    "PreflightError",
    "ProbeResult",
    "Severity",
    "address_collisions",
    "choose_backend",
    "choose_subnet",
    "machine_report",
    "probe_kernel",
    "raise_on_failures",
    "run_preflight",
]
