"""Where labs keep their state and runs keep their results.

One run directory per lab (``/run/netlab/<lab>/``) holds the state file, the
lock and agent sockets; ``NETLAB_RUN_ROOT`` moves it (tests use a temporary
root so they never see a user's labs).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_RUN_ROOT = Path("/run/netlab")
NAMESPACE_PREFIX = "nl-"
STATE_FILE = "state.json"
LOCK_FILE = "lock"


def run_root() -> Path:
    return Path(os.environ.get("NETLAB_RUN_ROOT", str(DEFAULT_RUN_ROOT)))


def lab_dir(lab: str) -> Path:
    return run_root() / lab


def state_path(lab: str) -> Path:
    return lab_dir(lab) / STATE_FILE
