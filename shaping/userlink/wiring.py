"""The two interfaces a user-space link moves packets between: persistent TUN devices.

Why TUN rather than AF_PACKET on veth ends: a TUN device hands the process
whole IP packets with no link layer (no ARP, no MAC learning, no hidden
namespace or extra veth pair to clean up), has no GRO/GSO offloads unless
asked (so every packet the link sees is a real wire-sized packet), and plain
Python moves about 100 kpps through it on this machine, twelve times the
8.3 kpps that 100 Mbit/s of 1500-byte packets needs.

The devices are created persistent (TUNSETPERSIST) inside their namespaces, so
the lab can address and route them before the link process attaches; the
link process re-attaches by name.  A TUN device must be opened from inside its
namespace (``/dev/net/tun`` binds to the opener's namespace; moving a TUN with
``ip link set netns`` failed here), so each open runs in a short-lived thread
that has ``setns()``-ed into the namespace (setns changes only the calling
thread).  Routing: the interfaces are point-to-point L3 (IFF_POINTOPOINT |
IFF_NOARP): routes must be ``dev IF`` (a ``via`` gateway is accepted but never
resolved), and nothing answers ARP or neighbour discovery.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from labcore import netns

from .errors import UserLinkError

Recorder = Callable[[str, str, str | None], None]

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFMTU = 0x8922
IFF_UP = 0x1
IFNAMSIZ = 16

T = TypeVar("T")


def netns_path(name: str) -> Path:
    path = netns.find(name)
    if path is None:
        raise UserLinkError(
            f"network namespace {name!r} does not exist",
            where=f"{netns.NETNS_DIRS[0] / name}",
            fix="create the namespace (ip netns add) before creating or starting the link",
        )
    return path


def in_netns(name: str, job: Callable[[], T]) -> T:
    """Run ``job`` in a thread that has joined namespace ``name``; return its result."""
    return netns.in_thread(netns_path(name), job, name=f"netns-{name}")


def _check_name(name: str) -> bytes:
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ or "/" in name or " " in name:
        raise UserLinkError(
            f"interface name {name!r} is not a valid Linux interface name",
            where="create_link_interfaces(if_a/if_b)",
            fix="use 1-15 characters without '/' or spaces",
        )
    return raw


def _exists(name: str) -> bool:
    """Whether ``name`` exists in the calling thread's namespace (sysfs would not follow setns)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _tun_attach(name: str) -> int:
    """Open /dev/net/tun bound to TUN ``name`` in the calling thread's namespace."""
    raw = _check_name(name)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", raw, IFF_TUN | IFF_NO_PI))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _set_mtu_and_up(name: str, mtu: int) -> None:
    raw = _check_name(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCSIFMTU, struct.pack("16si20x", raw, mtu))
        got = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16sH22x", raw, 0))
        flags = struct.unpack("16sH22x", got)[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", raw, flags | IFF_UP))


def _create_persistent_tun(name: str, mtu: int) -> None:
    if _exists(name):
        raise UserLinkError(
            f"interface {name!r} already exists in its namespace",
            where="create_link_interfaces",
            fix="pick another interface name or remove the stale interface",
        )
    fd = _tun_attach(name)
    try:
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)
    _set_mtu_and_up(name, mtu)


def _delete_persistent_tun(name: str) -> None:
    fd = _tun_attach(name)
    try:
        fcntl.ioctl(fd, TUNSETPERSIST, 0)
    finally:
        os.close(fd)  # the last close of a non-persistent TUN removes it


def create_link_interfaces(
    link_id: str,
    ns_a: str,
    if_a: str,
    ns_b: str,
    if_b: str,
    *,
    mtu: int = 1500,
    record: Recorder,
) -> None:
    """Create persistent TUN ``if_a`` in ``ns_a`` and ``if_b`` in ``ns_b``, up, with ``mtu``.

    ``record(kind, name, netns)`` is called before each object exists, so the
    lab's state file can always remove it.  On failure the interfaces this
    call made are removed again before the error propagates.
    """
    _check_name(if_a)
    _check_name(if_b)
    created: list[tuple[str, str]] = []
    try:
        for ns, name in ((ns_a, if_a), (ns_b, if_b)):
            netns_path(ns)
            record("link", name, ns)
            in_netns(ns, partial(_create_persistent_tun, name, mtu))
            created.append((ns, name))
    except OSError as exc:
        _remove_quietly(created)
        raise UserLinkError(
            f"could not create TUN interfaces for link {link_id!r}: {exc}",
            where=f"{ns_a}/{if_a} <-> {ns_b}/{if_b}",
            fix="check that /dev/net/tun exists (modprobe tun) and that you have CAP_NET_ADMIN",
        ) from exc
    except BaseException:
        _remove_quietly(created)
        raise


def _remove_quietly(created: list[tuple[str, str]]) -> None:
    for ns, name in created:
        with contextlib.suppress(OSError, UserLinkError):
            in_netns(ns, partial(_delete_persistent_tun, name))


def delete_link_interfaces(ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
    """Remove both TUN devices (those already gone are skipped)."""
    for ns, name in ((ns_a, if_a), (ns_b, if_b)):
        try:
            in_netns(ns, partial(_delete_persistent_tun, name))
        except (OSError, UserLinkError):
            continue


def open_tun(ns: str, name: str) -> int:
    """Attach to the existing TUN ``name`` in namespace ``ns``; a non-blocking fd."""
    if not in_netns(ns, lambda: _exists(name)):
        raise UserLinkError(
            f"TUN interface {name!r} does not exist in namespace {ns!r}",
            where="UserLinkSpec(ns/if)",
            fix="call create_link_interfaces() for this link before start_link()",
        )
    fd = in_netns(ns, lambda: _tun_attach(name))
    os.set_blocking(fd, False)
    return fd
