"""The run's one time zero, as every process that waits for it receives it.

A process that takes a while to start (a trace replayer opening netlink and
installing its shaper, a sender importing its estimator) is started early,
says it is ready, and then waits here for one line on its stdin::

    start <CLOCK_MONOTONIC ns>

The lab writes the same instant to every such process once all are ready, so
no trace and no flow starts a process's start-up time after another.  An
absolute instant (not "now") is sent so that when the writer is descheduled
between two processes, both still start together.  A closed stdin (the lab
went away) or a stop signal ends the wait with None.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Callable
from typing import IO

#: Time before a deadline from which the clock is polled rather than slept on:
#: a plain ``sleep(deadline - now)`` wakes 120-170 µs late at p50 on a 2-vCPU VM.
DEFAULT_SPIN_NS = 200_000
#: How often a wait for the start line looks at its stop flag.
POLL_S = 0.05
WORD = "start"


def sleep_until_ns(deadline_ns: int, spin_ns: int = DEFAULT_SPIN_NS) -> int:
    """Return at (or just after) ``deadline_ns`` on CLOCK_MONOTONIC; the wake-up time.

    Sleeps coarsely until ``spin_ns`` before the deadline, then spins on the
    clock.  A deadline in the past returns at once.
    """
    clock = time.monotonic_ns
    now = clock()
    left = deadline_ns - now
    if left > spin_ns:
        time.sleep((left - spin_ns) / 1e9)
        now = clock()
    while now < deadline_ns:
        now = clock()
    return now


def start_line(start_ns: int) -> bytes:
    """What the lab writes to a waiting process."""
    return f"{WORD} {start_ns}\n".encode()


def send_start(stream: IO[bytes], start_ns: int) -> None:
    """Hand ``start_ns`` to one waiting process and close its stdin.

    BrokenPipeError: the process is gone (the caller says which one).
    """
    try:
        stream.write(start_line(start_ns))
        stream.flush()
    finally:
        with contextlib.suppress(BrokenPipeError):
            stream.close()


def read_start(fd: int, stopped: Callable[[], bool] = lambda: False,
               poll_s: float = POLL_S) -> int | None:
    """Block until ``start NS`` arrives on ``fd``; NS, or None on EOF or ``stopped()``.

    ValueError names a line that is not a start line (a protocol error, not
    a user's).
    """
    data = b""
    while not data.endswith(b"\n"):
        if stopped():
            return None
        try:
            readable = select.select([fd], [], [], poll_s)[0]
        except InterruptedError:
            continue
        if not readable:
            continue
        chunk = os.read(fd, 64)
        if not chunk:
            return None
        data += chunk
    words = data.decode(errors="replace").split()
    if len(words) != 2 or words[0] != WORD or not words[1].isdigit():
        raise ValueError(f"expected '{WORD} <ns>' on stdin, got {data!r}")
    return int(words[1])


def wait_for_start(fd: int, stopped: Callable[[], bool] = lambda: False) -> int | None:
    """``read_start``, then sleep until that instant; the instant, or None (stopped)."""
    start_ns = read_start(fd, stopped)
    if start_ns is None:
        return None
    sleep_until_ns(start_ns)
    return start_ns
