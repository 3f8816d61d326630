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
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()
T = TypeVar("T")


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


def path_of(name: str) -> Path:
    return NETNS_RUN_DIR / name


def exists(name: str) -> bool:
    return path_of(name).exists()


def list_names() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_RUN_DIR.iterdir())
    except FileNotFoundError:
        return []


def inode_of(name: str) -> int:
    return os.stat(path_of(name)).st_ino


def create(name: str) -> None:
    """Create and pin a new, empty network namespace called ``name``."""
    with _lock:
        _ensure_run_dir()
        target = path_of(name)
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare", name)
            try:
                _check(
                    _libc.mount(b"/proc/thread-self/ns/net", str(target).encode(), b"none",
                                _MS_BIND, None),
                    "bind mount", name,
                )
            finally:
                _check(_libc.setns(home, CLONE_NEWNET), "setns back", name)
        except OSError:
            target.unlink(missing_ok=True)
            raise
        finally:
            os.close(home)


def remove(name: str) -> bool:
    """Unpin a namespace; the kernel frees it when nothing else holds it.

    Returns False when it did not exist.
    """
    target = path_of(name)
    if not target.exists():
        return False
    if _libc.umount2(str(target).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount {target}: {os.strerror(err)}")
    target.unlink(missing_ok=True)
    return True


def enter(name: str) -> None:
    """Move the calling thread into ``name`` for good (used before exec)."""
    fd = os.open(path_of(name), os.O_RDONLY)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), "setns", name)
    finally:
        os.close(fd)


@contextmanager
def inside(name: str) -> Iterator[None]:
    """Run a block in namespace ``name`` on this thread, then come home."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter(name)
        try:
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back", name)
    finally:
        os.close(home)


def call_inside(name: str, func: Callable[[], T]) -> T:
    """Call ``func`` inside ``name``: sockets it opens stay in ``name``."""
    with inside(name):
        return func()


def pids_inside(names: list[str]) -> list[int]:
    """Processes whose network namespace is one of ``names`` (matched by the
    namespace's inode, never by process name); one pass over /proc."""
    inodes = set()
    for name in names:
        try:
            inodes.add(inode_of(name))
        except FileNotFoundError:
            continue
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
