"""Start an endpoint module at an exact instant, with its imports already paid.

Under QEMU TCG a Python endpoint spends seconds importing numpy and its own
modules before it sends anything; started on schedule, a VM's flows would
begin seconds later than the same flows in namespaces.  The node therefore
starts every endpoint early through this launcher, which imports the module
(and with it everything it imports), creates ``--ready`` (so the node knows
the CPU-heavy part is over), waits for ``--go`` to hold the shared start on
CLOCK_MONOTONIC, sleeps until that start plus ``--offset-s``, then runs the
module as ``__main__`` with its arguments.

With ``--gate`` the module is a sender that waits for its start itself
(``--wait-start``, :mod:`endpoints.ready`), as in namespaces: it runs at once,
sets up (sockets, estimator, logs) before the start is even chosen, and reads
the start instant (the shared start plus ``--offset-s``) from its stdin, which
the launcher feeds. Started at its offset instead, a sender under TCG spent
0.1-0.2 s of its call setting up, and sent that much less than in namespaces.

Usage: ``python -m netlab.vagrant.launch [--gate] --ready PATH --go PATH --offset-s S MODULE
[ARG...]``
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import threading
import time
import warnings
from pathlib import Path

from labcore.startgate import start_line

USAGE = ("usage: python -m netlab.vagrant.launch [--gate] --ready PATH --go PATH --offset-s S "
         "MODULE [ARG...]")


def wait_for_start(go: Path) -> int:
    while True:
        try:
            text = go.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text:
            return int(text)
        time.sleep(0.02)


def feed_start(go: Path, offset_s: float) -> None:
    """Make stdin a pipe that will carry ``start NS`` (the shared start plus
    ``offset_s``) as soon as the node writes ``go``, in a thread: the module
    meanwhile sets up and waits on it (:func:`endpoints.ready.ready_then_start_instant`)."""
    read_fd, write_fd = os.pipe()
    os.dup2(read_fd, 0)
    os.close(read_fd)

    def feed() -> None:
        at_ns = wait_for_start(go) + round(offset_s * 1e9)
        with os.fdopen(write_fd, "wb") as stream:
            stream.write(start_line(at_ns))

    threading.Thread(target=feed, name="start-feed", daemon=True).start()


def main(argv: list[str]) -> None:
    gate = argv[:1] == ["--gate"]
    if gate:
        argv = argv[1:]
    if len(argv) < 7 or (argv[0], argv[2], argv[4]) != ("--ready", "--go", "--offset-s"):
        raise SystemExit(USAGE)
    ready, go, offset_s, module, args = Path(argv[1]), Path(argv[3]), float(argv[5]), argv[6], \
        argv[7:]
    importlib.import_module(module)  # the slow part, before the start is even chosen
    ready.touch()
    if gate:
        feed_start(go, offset_s)
    else:
        at_ns = wait_for_start(go) + round(offset_s * 1e9)
        while (left := at_ns - time.monotonic_ns()) > 0:
            time.sleep(min(left / 1e9, 0.5))
    sys.argv = [module, *args]
    # runpy warns that the module is already imported: that is the point here
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="runpy")
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
