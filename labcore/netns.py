"""Entering a network namespace: one thread, one ``setns(2)``, errors that say where.

Linux namespaces are per thread, so three ways cover every caller: move the
calling thread for good (:func:`enter`, before exec or in a one-job child
process), visit and come back (:func:`inside`, :func:`call_inside`: sockets
opened there stay there), or run a job on a fresh thread that enters and then
ends with it (:func:`in_thread`, so the caller's thread never moves at all).
Namespaces are named as ``ip netns`` names them: files under /run/netns.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

#: Where ``ip netns`` pins named namespaces (/var/run is usually a link to /run).
NETNS_DIRS = (Path("/run/netns"), Path("/var/run/netns"))
NETNS_RUN_DIR = NETNS_DIRS[0]
CLONE_NEWNET = 0x40000000  # linux/sched.h
#: The calling thread's own namespace (``/proc/self`` would name the main thread's).
THREAD_NETNS = "/proc/thread-self/ns/net"

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def path_of(name: str) -> Path:
    """Where the namespace called ``name`` is pinned (whether or not it exists)."""
    return NETNS_RUN_DIR / name


def find(name: str) -> Path | None:
    """The pinned file of namespace ``name`` in either run directory, or None."""
    for directory in NETNS_DIRS:
        path = directory / name
        if path.exists():
            return path
    return None


def setns_fd(fd: int, what: str = "namespace") -> None:
    """Move the calling thread into the network namespace open at ``fd``."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns into {what} failed: {os.strerror(err)}")


def _target(namespace: str | Path) -> Path:
    """A path as given (a str starting with / too, as pyroute2 reads it), else a name."""
    if isinstance(namespace, Path) or namespace.startswith("/"):
        return Path(namespace)
    return find(namespace) or path_of(namespace)


def enter(namespace: str | Path) -> None:
    """Move the calling thread into ``namespace`` (a name or a path) for good.

    A missing namespace is an error (pyroute2's ``setns`` would create it).
    """
    target = _target(namespace)
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns_fd(fd, str(target))
    finally:
        os.close(fd)


@contextmanager
def inside(namespace: str | Path) -> Iterator[None]:
    """Run a block in ``namespace`` on this thread, then come home."""
    home = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter(namespace)
        try:
            yield
        finally:
            setns_fd(home, f"the thread's own namespace (back from {namespace})")
    finally:
        os.close(home)


def call_inside(namespace: str | Path, func: Callable[[], T]) -> T:
    """Call ``func`` inside ``namespace``: sockets it opens stay there."""
    with inside(namespace):
        return func()


def in_thread(namespace: str | Path, job: Callable[[], T], *, name: str = "netns") -> T:
    """Run ``job`` on a new thread that has entered ``namespace``; return its result.

    The thread ends with the job, so no thread of the caller ever changes
    namespace.  Errors (from setns or from the job) are re-raised here.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            enter(namespace)
            result.append(job())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
