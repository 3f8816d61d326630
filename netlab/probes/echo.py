"""UDP echo between lab hosts, measured from one process.

Sockets are opened inside each host's namespace and then driven from this
process, so one clock timestamps both the request and the reply.  The RTT is
the path's alone, as TWAMP measures it (RFC 5357 §4.2.1): the kernel stamps
each datagram's arrival (``SO_TIMESTAMPNS``) and the client's request as it
leaves (``SO_TIMESTAMPING``), the reflector appends when its
request arrived and when it sent the reply, and the client subtracts that
hold.  Neither side's wake-up (a GIL handover, a descheduled thread: easily
1 ms on a busy machine) is then taken for delay the link added.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from netlab.lab import netns

ECHO_PORT = 7  # RFC 862 echo, inside the lab's own namespaces only
_PROBE = struct.Struct("!IQ")  # sequence, send time (ns)
#: Appended to each reply by the reflector: when the request arrived, when the
#: reply was about to go, and 1 if a follow-up will carry the kernel's stamp of
#: the reply leaving (two-step, as PTP's Follow_Up: IEEE 1588).
_HOLD = struct.Struct("!QQB")
#: A follow-up: the request's header, arrival and kernel send stamps, the tag.
_FOLLOW_UP_TAG = b"FOLLOWUP"
_FOLLOW_UP = struct.Struct(f"!{_PROBE.size}sQQ{len(_FOLLOW_UP_TAG)}s")
#: How long a client waits for a promised follow-up after its reply (the
#: reflector sends it at once; a lost one leaves the one-step reading).
FOLLOW_UP_WAIT_S = 0.05
#: asm-generic/socket.h ``SO_TIMESTAMPNS`` (the socket module does not name it):
#: a ``struct timespec`` of CLOCK_REALTIME comes with every datagram received.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
#: linux/net_tstamp.h: stamp each datagram sent as it enters the first
#: qdisc (``TX_SCHED``), reported in software time without the payload.
SO_TIMESTAMPING = 37
_TX_STAMPS = (1 << 8) | (1 << 4) | (1 << 11)  # TX_SCHED | SOFTWARE | OPT_TSONLY
_TIMESTAMPING = struct.Struct("@qqqqqq")  # struct scm_timestamping: ts[0] is software


def stamp_arrivals(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def stamp_sends(sock: socket.socket) -> bool:
    """Ask for kernel send stamps; False where the kernel has none (the caller's
    own clock is then used)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, _TX_STAMPS)
    except OSError:
        return False
    return True


def sent_stamp(sock: socket.socket) -> int | None:
    """The kernel's stamp of the datagram just sent (``MSG_ERRQUEUE``, queued
    during ``sendto`` itself), or None if it gave none."""
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        _, ancillary, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(_TIMESTAMPING.size) + 256,
                                          socket.MSG_ERRQUEUE)
    except OSError:
        return None
    finally:
        sock.settimeout(timeout)
    return _stamp_ns(ancillary, SO_TIMESTAMPING)


def _stamp_ns(ancillary: list[tuple[int, int, bytes]], kind: int) -> int | None:
    """The first ``struct timespec`` of the ``kind`` control message, in ns."""
    for level, got, payload in ancillary:
        if level == socket.SOL_SOCKET and got == kind and len(payload) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def recv_stamped(sock: socket.socket) -> tuple[bytes, Any, int]:
    """(data, peer, arrival ns): the kernel's stamp, or now if none came."""
    data, ancillary, _, peer = sock.recvmsg(65536, socket.CMSG_SPACE(_TIMESPEC.size))
    arrived_ns = _stamp_ns(ancillary, SO_TIMESTAMPNS)
    return data, peer, time.time_ns() if arrived_ns is None else arrived_ns


@dataclass(frozen=True)
class EchoResult:
    sent: int
    received: int
    rtts_s: tuple[float, ...]

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 0.0


class EchoServers:
    """An echo responder in each given namespace, served by one thread."""

    def __init__(self, namespaces: list[str], port: int = ECHO_PORT) -> None:
        self._selector = selectors.DefaultSelector()
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        for namespace in namespaces:
            sock = netns.call_inside(namespace, lambda: socket.socket(socket.AF_INET,
                                                                      socket.SOCK_DGRAM))
            sock.bind(("0.0.0.0", port))
            sock.setblocking(False)
            stamp_arrivals(sock)
            self._selector.register(sock, selectors.EVENT_READ, stamp_sends(sock))
            self._sockets.append(sock)
        self._thread = threading.Thread(target=self._serve, name="echo", daemon=True)

    def __enter__(self) -> EchoServers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._selector.close()
        for sock in self._sockets:
            sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                with contextlib.suppress(BlockingIOError):
                    while True:
                        self._reflect(sock, *recv_stamped(sock), two_step=bool(key.data))
                while key.data and sent_stamp(sock) is not None:
                    pass  # a stamp left queued would make select() return at once, forever

    @staticmethod
    def _reflect(sock: socket.socket, data: bytes, peer: Any, arrived_ns: int,
                 two_step: bool) -> None:
        """Reply with the hold; this thread may wait for the GIL between reading
        the clock and sending, so the kernel's own send stamp follows up."""
        sock.sendto(data + _HOLD.pack(arrived_ns, time.time_ns(), two_step), peer)
        if two_step and len(data) >= _PROBE.size:
            sent_ns = sent_stamp(sock)
            if sent_ns is not None:
                sock.sendto(_FOLLOW_UP.pack(data[:_PROBE.size], arrived_ns, sent_ns,
                                            _FOLLOW_UP_TAG), peer)
                sent_stamp(sock)  # the follow-up's own: not the next reply's


def ping(namespace: str, target: str, *, count: int = 20, interval_s: float = 0.01,
         timeout_s: float = 1.0, port: int = ECHO_PORT, size: int | None = None) -> EchoResult:
    """Send ``count`` echo requests from ``namespace`` and time the replies;
    ``size``: IP packet bytes of each request (20 IP + 8 UDP header bytes
    included), at least the 12 bytes of sequence and time."""
    padding = b"\0" * max(0, (size or 0) - 28 - _PROBE.size)
    sock = netns.call_inside(namespace, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        stamp_arrivals(sock)
        stamp_sends(sock)
        rtts: list[float] = []
        for seq in range(count):
            request = _PROBE.pack(seq, time.time_ns()) + padding
            sock.settimeout(timeout_s)
            sock.sendto(request, (target, port))
            rtt_ns = _await_reply(sock, request, sent_stamp(sock), timeout_s)
            if rtt_ns is not None:
                rtts.append(rtt_ns / 1e9)
            time.sleep(interval_s)
        return EchoResult(count, len(rtts), tuple(rtts))
    finally:
        sock.close()


def _await_reply(sock: socket.socket, request: bytes, kernel_sent_ns: int | None,
                 timeout_s: float) -> int | None:
    """The path RTT of ``request`` (ns), or None if no reply came in time."""
    seq, user_sent_ns = _PROBE.unpack_from(request)
    sent_ns = kernel_sent_ns or user_sent_ns
    deadline = time.monotonic() + timeout_s
    reply_rtt_ns: int | None = None  # one-step: arrival - send - the reply's own hold
    reply_arrived_ns: int | None = None
    kernel_hold_ns: int | None = None  # from the follow-up
    follow_up_due = False
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, _, arrived_ns = recv_stamped(sock)
        except (TimeoutError, ConnectionRefusedError):
            break
        if len(data) < _PROBE.size or _PROBE.unpack_from(data)[0] != seq:
            continue  # a late reply to an earlier request
        if len(data) == _FOLLOW_UP.size and data.endswith(_FOLLOW_UP_TAG):
            _, received_ns, replied_ns, _ = _FOLLOW_UP.unpack(data)
            kernel_hold_ns = max(0, replied_ns - received_ns)
        elif reply_arrived_ns is None:
            reply_arrived_ns = arrived_ns
            reply_rtt_ns, follow_up_due = _one_step(data, len(request), sent_ns, arrived_ns)
            if follow_up_due:
                deadline = min(deadline, time.monotonic() + FOLLOW_UP_WAIT_S)
        if reply_arrived_ns is not None and (kernel_hold_ns is not None or not follow_up_due):
            break
    if reply_arrived_ns is not None and kernel_hold_ns is not None:
        return max(0, reply_arrived_ns - sent_ns - kernel_hold_ns)
    return reply_rtt_ns


def _one_step(reply: bytes, request_len: int, sent_ns: int, arrived_ns: int
              ) -> tuple[int, bool]:
    """(arrival - send less the reflector's hold when it gave one, whether a
    follow-up with the kernel's send stamp will come)."""
    rtt = arrived_ns - sent_ns
    if len(reply) != request_len + _HOLD.size:
        return max(0, rtt), False  # a plain RFC 862 echo
    received_ns, replied_ns, two_step = _HOLD.unpack_from(reply, request_len)
    return max(0, rtt - max(0, replied_ns - received_ns)), bool(two_step)
