"""Where labs keep their state and runs keep their results.

One run directory per lab (``/run/netlab/<lab>/``) holds the state file, the
lock and agent sockets; ``NETLAB_RUN_ROOT`` moves it (tests use a temporary
root so they never see a user's labs).

The lab's logs (user-space links' per-packet logs, trace replayers' logs)
grow with traffic, about 1.4 GB/h at 100 Mbit/s, so they live on disk in
``/var/lib/netlab/labs/<lab>/``, not in RAM-backed ``/run``.
``NETLAB_LOG_ROOT`` moves them; a ``NETLAB_RUN_ROOT`` given without it holds
the logs as well (one folder to look in or clean up).  Each log is capped at
``NETLAB_LOG_CAP_MB`` MiB (default 1024).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_RUN_ROOT = Path("/run/netlab")
DEFAULT_LOG_ROOT = Path("/var/lib/netlab/labs")
NAMESPACE_PREFIX = "nl-"
STATE_FILE = "state.json"
LOCK_FILE = "lock"


def run_root() -> Path:
    return Path(os.environ.get("NETLAB_RUN_ROOT", str(DEFAULT_RUN_ROOT)))


def lab_dir(lab: str) -> Path:
    return run_root() / lab


def state_path(lab: str) -> Path:
    return lab_dir(lab) / STATE_FILE


def log_root() -> Path:
    """Where labs' logs go: ``NETLAB_LOG_ROOT``, else an explicit
    ``NETLAB_RUN_ROOT``, else ``/var/lib/netlab/labs`` (on disk, not RAM)."""
    if root := os.environ.get("NETLAB_LOG_ROOT"):
        return Path(root)
    if "NETLAB_RUN_ROOT" in os.environ:
        return run_root()
    return DEFAULT_LOG_ROOT


def lab_log_dir(lab: str) -> Path:
    return log_root() / lab
