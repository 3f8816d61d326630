"""Sending tc operations to the kernel over a private rtnetlink socket.

The socket is opened in the network namespace of the caller's pyroute2
``IPRoute`` (found with the SIOCGSKNS ioctl on its socket), subscribes to no
multicast group, and carries pre-packed messages: one rate change costs a
``send`` and a ``recv`` of a few dozen bytes, cheap enough for 100 changes a
second.  The caller's ``IPRoute`` is still used for the slow parts (interface
lookup, offload settings, statistics).
"""

from __future__ import annotations

import errno as errno_codes
import fcntl
import os
import socket
import struct
import threading
from typing import Any

from labcore import netns
from shaping.errors import ShapingError
from shaping.tc.offload import set_offloads
from shaping.tc.ops import LinkOp, TcOp
from shaping.tc.wire import TCA_KIND, TCA_OPTIONS, attr

RTM_NEWQDISC = 36
RTM_DELQDISC = 37
RTM_NEWTCLASS = 40
RTM_DELTCLASS = 41
NLMSG_ERROR = 2

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # in an error message: the request payload was left out
NLM_F_ACK_TLVS = 0x200  # in an error message: extended-ack attributes follow

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NLMSGERR_ATTR_MSG = 1

SIOCGSKNS = 0x894C  # linux/sockios.h: namespace of a socket, as a new fd

_FLAGS = {
    "add": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    "change": NLM_F_REQUEST | NLM_F_ACK,
    "replace": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    "delete": NLM_F_REQUEST | NLM_F_ACK,
}

_setns_lock = threading.Lock()


def netlink_socket_beside(ipr: Any) -> socket.socket:
    """A NETLINK_ROUTE socket in the same network namespace as ``ipr``'s.

    Switches only this thread into the namespace, and back, under a lock.
    """
    ns_fd = fcntl.ioctl(ipr.fileno(), SIOCGSKNS)
    own_fd = os.open(netns.THREAD_NETNS, os.O_RDONLY)
    try:
        with _setns_lock:
            netns.setns_fd(ns_fd, "the pyroute2 socket's namespace")
            try:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            finally:
                netns.setns_fd(own_fd, "the thread's own namespace")
    finally:
        os.close(ns_fd)
        os.close(own_fd)
    sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    sock.bind((0, 0))
    return sock


def _error_text(reply: bytes, offset: int, length: int, flags: int) -> str | None:
    """The kernel's extended-ack message (e.g. "Specified qdisc kind is unknown")."""
    if not flags & NLM_F_ACK_TLVS:
        return None
    inner_len = struct.unpack_from("=I", reply, offset + 20)[0]
    pos = offset + 20 + (16 if flags & NLM_F_CAPPED else (inner_len + 3) & ~3)
    end = offset + length
    while pos + 4 <= end:
        alen, atype = struct.unpack_from("=HH", reply, pos)
        if alen < 4:
            break
        if atype == NLMSGERR_ATTR_MSG:
            return reply[pos + 4 : pos + alen].rstrip(b"\0").decode(errors="replace")
        pos += (alen + 3) & ~3
    return None


class NetlinkSink:
    """Runs operations on the egress of one interface, in ``ipr``'s namespace."""

    def __init__(self, ipr: Any, ifname: str) -> None:
        self.ipr = ipr
        self.ifname = ifname
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise ShapingError(
                f"interface {ifname} does not exist in the namespace of the given IPRoute",
                where=f"interface {ifname}",
                fix="create the interface first, or open IPRoute(netns=...) in its namespace",
            )
        self.index: int = found[0]
        self._sock = netlink_socket_beside(ipr)
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def run(self, op: TcOp) -> None:
        if op.target == "qdisc":
            msg_type = RTM_DELQDISC if op.verb == "delete" else RTM_NEWQDISC
        else:
            msg_type = RTM_DELTCLASS if op.verb == "delete" else RTM_NEWTCLASS
        # struct tcmsg: family, pad1, pad2, ifindex, handle, parent, info
        body = struct.pack("=BBHiIII", socket.AF_UNSPEC, 0, 0, self.index, op.handle, op.parent, 0)
        if op.options is not None:
            body += attr(TCA_KIND, op.options.kind.encode() + b"\0")
            body += attr(TCA_OPTIONS, op.options.encode())
        self._request(msg_type, _FLAGS[op.verb], body, op)

    def run_link(self, op: LinkOp) -> None:
        set_offloads(self.ipr, op)

    def _request(self, msg_type: int, flags: int, body: bytes, op: TcOp) -> None:
        self._seq += 1
        seq = self._seq
        self._sock.send(struct.pack("=IHHII", 16 + len(body), msg_type, flags, seq, 0) + body)
        while True:
            reply = self._sock.recv(65536)
            offset = 0
            while offset + 16 <= len(reply):
                length, rtype, rflags, rseq, _ = struct.unpack_from("=IHHII", reply, offset)
                if rtype == NLMSG_ERROR and rseq == seq:
                    code = -struct.unpack_from("=i", reply, offset + 16)[0]
                    if code:
                        raise self._error(op, code, _error_text(reply, offset, length, rflags))
                    return
                if length < 16:
                    break
                offset += (length + 3) & ~3

    def _error(self, op: TcOp, code: int, detail: str | None) -> ShapingError:
        name = errno_codes.errorcode.get(code, str(code))
        what = f"the kernel refused `{op.render()}`: {os.strerror(code)} ({name})"
        if detail:
            what += f": {detail}"
        kind = op.options.kind if op.options is not None else None
        if code == errno_codes.ENOENT and kind is not None and op.verb in ("add", "replace"):
            fix = f"load the {kind} qdisc module (modprobe sch_{kind}) or pick another strategy"
        elif code == errno_codes.EPERM:
            fix = "run as root (CAP_NET_ADMIN in the interface's namespace)"
        else:
            fix = "check the interface's qdisc tree with `tc -s qdisc show dev " + self.ifname + "`"
        return ShapingError(what, where=f"interface {self.ifname}", fix=fix, errno=code)
