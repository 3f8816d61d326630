"""The one size cap every run log stops at: ``NETLAB_LOG_CAP_MB`` MiB, 1024 by default.

The user-space link, the replayers and both endpoints write logs in separate
processes of separate packages; they read the cap here so a user's setting
means the same for all of them.
"""

from __future__ import annotations

import os

CAP_ENV = "NETLAB_LOG_CAP_MB"
DEFAULT_CAP_BYTES = 1024 << 20


def log_cap_bytes() -> int:
    """The per-log size cap: ``NETLAB_LOG_CAP_MB`` (MiB) or 1024 MiB (also when unreadable)."""
    raw = os.environ.get(CAP_ENV, "")
    try:
        return max(1, int(float(raw) * (1 << 20))) if raw else DEFAULT_CAP_BYTES
    except ValueError:
        return DEFAULT_CAP_BYTES
