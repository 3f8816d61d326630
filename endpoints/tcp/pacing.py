"""Sending rate set from outside: rate commands on a Unix datagram socket,
applied to the TCP socket as SO_MAX_PACING_RATE.

Wire format (one datagram = one command): 8 bytes, unsigned 64-bit
little-endian, the rate in **bytes per second**. ``0xFFFF_FFFF_FFFF_FFFF``
lifts the limit. Other values are clamped to at least
:data:`MIN_PACING_RATE_BPS` (10 kbit/s, the bottom of OpenNetLab's action
range) because the kernel treats a pacing rate of 0 as "no pacing" (see
``tcp_update_skb_after_send()`` in net/ipv4/tcp_output.c), which would
silently turn a "stop" into "unlimited". Datagrams of another size are
counted and ignored. When several commands wait, only the newest is applied
(the endpoint acts on the newest action, as in mvfst-rl's asynchronous
design).

Why this works without the fq qdisc: setting SO_MAX_PACING_RATE moves the
socket from SK_PACING_NONE to SK_PACING_NEEDED (``sk_setsockopt()`` in
net/core/sock.c), and TCP then paces itself with its internal hrtimer
pacing (Linux >= 4.13, "tcp: internal implementation for pacing"). The
kernel also lowers ``sk_pacing_rate`` at once, so the next skb leaves at
the new rate. (The kernel leaves the first 10 segments of a connection
unpaced, as sch_fq does.)

Granularity: the kernel paces whole skbs, and each skb's departure is set
when the previous one leaves (``tcp_wstamp_ns += len / rate``), so a rate
change reaches the wire after the skb already scheduled. With MSS-sized
packets that is negligible (1.2 ms at 10 Mbit/s), but on a path with a tiny
RTT (the host's loopback: µs) ``tcp_tso_autosize()`` builds 64 kB skbs
(``net.ipv4.tcp_tso_rtt_log``), and after a very low rate (64 kB at
10 kbit/s is 52 s) the flow stays stalled for that long even once the rate
is raised. Lab paths with a few ms of delay get small skbs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from endpoints.tcp.errors import TcpEndpointError
from endpoints.tcp.tcp_info import SO_MAX_PACING_RATE

COMMAND: Final = struct.Struct("<Q")
UNLIMITED: Final = 0xFFFF_FFFF_FFFF_FFFF
MIN_PACING_RATE_BPS: Final = 1250


def encode_rate_command(rate_Bps: int) -> bytes:
    """The datagram that asks for ``rate_Bps`` bytes per second."""
    return COMMAND.pack(int(rate_Bps))


def send_rate_command(path: str | Path, rate_Bps: int) -> None:
    """Send one rate command to a sender's control socket (for agents and tests)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.sendto(encode_rate_command(rate_Bps), str(path))


def clamp_rate(requested_Bps: int) -> int:
    return requested_Bps if requested_Bps == UNLIMITED else max(MIN_PACING_RATE_BPS,
                                                                requested_Bps)


def set_max_pacing_rate(sock: socket.socket, rate_Bps: int) -> None:
    """SO_MAX_PACING_RATE with a 64-bit value (accepted since Linux 4.20),
    so rates above 4 GB/s are not truncated."""
    sock.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, struct.pack("=Q", rate_Bps))


@dataclass(frozen=True)
class AppliedCommand:
    t_recv_ns: int
    t_applied_ns: int
    requested_Bps: int
    applied_Bps: int


class PacingControl:
    """The listening end of the control socket, owned by one sender."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.bad_commands = 0
        self._remove_stale_socket()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(str(self.path))
        except OSError as exc:
            self.sock.close()
            raise TcpEndpointError(
                f"cannot listen for pacing commands: {exc.strerror}",
                where=f"--pacing-control {self.path}",
                fix="give a path in an existing, writable directory") from exc
        self.sock.setblocking(False)

    def _remove_stale_socket(self) -> None:
        """A socket file left by an earlier run is removed; anything else at
        the path is not ours to delete."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise TcpEndpointError(
                "the pacing control path exists and is not a socket",
                where=f"--pacing-control {self.path}", fix="choose a path that does not exist")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()  # nobody listens: stale
            return
        finally:
            probe.close()
        raise TcpEndpointError(
            "another process is listening on the pacing control socket",
            where=f"--pacing-control {self.path}", fix="give each sender its own socket path")

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> tuple[int, int] | None:
        """Read every waiting command; return (receive time, newest valid rate)."""
        newest: int | None = None
        t_recv = 0
        while True:
            try:
                data = self.sock.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            t_recv = time.monotonic_ns()
            if len(data) != COMMAND.size:
                self.bad_commands += 1
                continue
            newest = COMMAND.unpack(data)[0]
        return None if newest is None else (t_recv, newest)

    def apply_pending(self, tcp_sock: socket.socket) -> AppliedCommand | None:
        """Apply the newest waiting command to ``tcp_sock``, if any."""
        pending = self.drain()
        if pending is None:
            return None
        t_recv, requested = pending
        applied = clamp_rate(requested)
        set_max_pacing_rate(tcp_sock, applied)
        return AppliedCommand(t_recv, time.monotonic_ns(), requested, applied)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
