"""Where an unexpected exception's traceback goes, so none reaches a user.

The CLI prints one line naming this file; the traceback lands in the run's
results directory when a run has one (beside what the user will attach to a
report anyway), else in netlab's log directory (``NETLAB_LOG_DIR``, default
``/var/log/netlab`` for root, ``~/.local/state/netlab`` otherwise, the
system's temporary directory as the last resort).
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path

_run_dir: Path | None = None


def set_run_dir(path: Path | None) -> None:
    """The results directory of the run this process is doing (None: none)."""
    global _run_dir
    _run_dir = path


def log_dir() -> Path:
    if os.environ.get("NETLAB_LOG_DIR"):
        return Path(os.environ["NETLAB_LOG_DIR"])
    if os.geteuid() == 0:
        return Path("/var/log/netlab")
    return Path.home() / ".local" / "state" / "netlab"


def write(exc: BaseException, argv: list[str]) -> Path:
    """Write ``exc``'s traceback and the command line; returns the file."""
    text = (f"netlab {' '.join(argv)}\n{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n\n"
            + "".join(traceback.format_exception(exc)))
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    candidates = [_run_dir] if _run_dir is not None and _run_dir.is_dir() else []
    candidates += [log_dir(), Path(tempfile.gettempdir())]
    for directory in candidates:
        assert directory is not None
        path = directory / f"netlab-internal-error-{stamp}.log"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return path
        except OSError:
            continue
    raise OSError("no writable directory for the internal-error log")
