"""Network namespaces made in-process with unshare/setns (no fork per namespace).

pyroute2's ``netns.create`` and ``IPRoute(netns=...)`` fork a helper process
each time (about 10 ms); a 50-host lab would spend most of its build time
there.  Namespaces are per-thread in Linux, so the calling thread can
``unshare`` a new one, bind-mount it under /run/netns like iproute2 does,
open whatever sockets it needs there (sockets keep the namespace they were
created in), and ``setns`` back.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading
from collections.abc import Callable

# Entering a namespace is the bottom layer's (shared with shaping); re-exported
# here so the lab's callers keep one import.
from labcore.netns import (
    CLONE_NEWNET,
    NETNS_RUN_DIR,
    call_inside,
    enter,
    inside,
    path_of,
    setns_fd,
)

__all__ = [
    "CLONE_NEWNET",
    "NETNS_RUN_DIR",
    "call_inside",
    "create",
    "enter",
    "exists",
    "inode_of",
    "inside",
    "is_placeholder",
    "list_names",
    "path_of",
    "pids_inside",
    "remove",
]

_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()


def _check(result: int, what: str, name: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} failed for namespace {name}: {os.strerror(err)}")


def _ensure_run_dir() -> None:
    """Make /run/netns a shared mount, as ``ip netns add`` does, so bind
    mounts made here are visible to every mount namespace."""
    NETNS_RUN_DIR.mkdir(parents=True, exist_ok=True)
    path = str(NETNS_RUN_DIR).encode()
    if _libc.mount(b"", path, b"none", _MS_SHARED | _MS_REC, None) == 0:
        return
    _check(_libc.mount(path, path, b"none", _MS_BIND | _MS_REC, None), "bind /run/netns", "-")
    _check(_libc.mount(b"", path, b"none", _MS_SHARED | _MS_REC, None), "share /run/netns", "-")


def exists(name: str) -> bool:
    return path_of(name).exists()


def list_names() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_RUN_DIR.iterdir())
    except FileNotFoundError:
        return []


def is_placeholder(name: str) -> bool:
    """The empty file ``create`` makes before pinning a namespace on it: a
    build stopped in between leaves it behind, holding no namespace."""
    try:
        found = os.stat(path_of(name))
        return (stat.S_ISREG(found.st_mode) and found.st_size == 0
                and found.st_dev == os.stat(NETNS_RUN_DIR).st_dev)
    except FileNotFoundError:
        return False


def inode_of(name: str) -> int:
    return os.stat(path_of(name)).st_ino


def create(name: str, identified: Callable[[int], None] | None = None) -> int:
    """Create and pin a new, empty network namespace called ``name``.

    Returns its inode; ``identified(inode)`` is called before the namespace
    is pinned under its name, so a journal can hold its identity before
    anything else can see it (a crash before the pin frees it again).
    """
    with _lock:
        _ensure_run_dir()
        target = path_of(name)
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare", name)
            try:
                inode = os.stat("/proc/thread-self/ns/net").st_ino
                if identified is not None:
                    identified(inode)
                _check(
                    _libc.mount(b"/proc/thread-self/ns/net", str(target).encode(), b"none",
                                _MS_BIND, None),
                    "bind mount", name,
                )
            finally:
                setns_fd(home, f"the builder's own namespace (back from {name})")
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        finally:
            os.close(home)
    return inode


def remove(name: str, inode: int | None = None) -> bool:
    """Unpin a namespace; the kernel frees it when nothing else holds it.

    With ``inode``, only the namespace of that identity is unpinned: another
    one pinned under the same name is left alone.  Returns False when
    nothing was removed.
    """
    target = path_of(name)
    try:
        found = os.stat(target).st_ino
    except FileNotFoundError:
        return False
    if inode is not None and found != inode:
        return False
    if _libc.umount2(str(target).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount {target}: {os.strerror(err)}")
    target.unlink(missing_ok=True)
    return True


def pids_inside(inodes: set[int]) -> list[int]:
    """Processes whose network namespace is one of ``inodes`` (never matched
    by process or namespace name); one pass over /proc."""
    if not inodes:
        return []
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                found.append(int(entry))
        except OSError:
            continue
    return found
