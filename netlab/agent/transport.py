"""The agent's sockets: one SEQPACKET listener (mode 0600), its connections, a
wake-up pair for the control thread, and the epoll set over all of them.

Frames are read up to ``READS_PER_CONNECTION`` per connection per wake-up (one
busy flow cannot starve the others) and replies are sent non-blocking: a client
that does not read loses replies, never the agent's time.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from endpoints import agent_protocol as proto
from netlab.errors import NetlabError

if TYPE_CHECKING:
    from netlab.agent.requests import FlowState

READS_PER_CONNECTION = 64
#: Connections one agent serves: a lab host runs a handful of flows, each with its
#: own connection; the cap keeps a misbehaving client from growing the epoll set.
MAX_CONNECTIONS = 256

#: What the loop is told about each ready descriptor.
WAKE, LISTEN = "wake", "listen"


@dataclass(slots=True)
class Connection:
    sock: socket.socket
    flows: dict[int, FlowState] = field(default_factory=dict)
    errors: int = 0


class Transport:
    """Owns every descriptor; the serving loop asks it to wait, read and send."""

    def __init__(self, path: Path, counters: dict[str, int], errors: dict[str, int]) -> None:
        self.path = path
        self.counters = counters
        self.errors = errors
        self.listener: socket.socket | None = None
        self.connections: dict[int, Connection] = {}
        self.epoll: select.epoll | None = None
        self._handlers: dict[int, Connection | str] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._limits_logged: set[str] = set()

    def open(self) -> None:
        """Bind and listen: from here on clients can connect (a connectable socket is
        the readiness signal, so open it last, after the control API)."""
        if self.listener is None:
            self.listener = listen(self.path)

    def start(self) -> select.epoll:
        self.open()
        assert self.listener is not None
        self.epoll = select.epoll()
        self._register(self.listener, LISTEN)
        self._register(self._wake_r, WAKE)
        return self.epoll

    def close(self) -> None:
        for conn in list(self.connections.values()):
            conn.sock.close()
        self.connections.clear()
        self._handlers.clear()
        if self.epoll is not None:
            self.epoll.close()
            self.epoll = None
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def wake(self) -> None:
        """From another thread: make the loop's current wait return."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def handler(self, fd: int) -> Connection | str | None:
        return self._handlers.get(fd)

    def drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)

    # ---- connections -----------------------------------------------------------------

    def _register(self, sock: socket.socket, handler: Connection | str) -> None:
        assert self.epoll is not None
        self.epoll.register(sock.fileno(), select.EPOLLIN)
        self._handlers[sock.fileno()] = handler

    def accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # BlockingIOError included: none left
                return
            if len(self.connections) >= MAX_CONNECTIONS:
                self._refuse_connection(sock)
                continue
            sock.setblocking(False)
            conn = Connection(sock)
            self.connections[sock.fileno()] = conn
            self._register(sock, conn)
            self.counters["connections"] += 1

    def _refuse_connection(self, sock: socket.socket) -> None:
        """Tell an extra client why, count it, hang up: the agent serves on."""
        self.counters["refused_connections"] += 1
        self.errors["LIMIT"] = self.errors.get("LIMIT", 0) + 1
        self.note_limit(f"refused a connection: at most {MAX_CONNECTIONS} connections")
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(proto.error(0, 0, 0, proto.ErrorCode.LIMIT,
                                  f"this agent serves at most {MAX_CONNECTIONS} connections; "
                                  "close one or start another agent"))
            for _ in range(READS_PER_CONNECTION):  # unread frames would reset the peer and
                sock.recv(proto.MAX_FRAME + 1)      # drop the ERROR before it reads it
        sock.close()

    def note_limit(self, what: str) -> None:
        """One log line per kind of limit reached (a flood must not flood the log)."""
        if what not in self._limits_logged:
            self._limits_logged.add(what)
            print(f"agent: {what} (further refusals are counted in the stats)",
                  file=sys.stderr, flush=True)

    def close_connection(self, conn: Connection) -> None:
        fd = conn.sock.fileno()
        if self.epoll is not None:
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(fd)
        self._handlers.pop(fd, None)
        self.connections.pop(fd, None)
        conn.sock.close()

    def read(self, conn: Connection, on_frame: Callable[[Connection, bytes, int], None],
             clock: Callable[[], int]) -> None:
        """Every waiting frame of ``conn`` (at most ``READS_PER_CONNECTION``), each
        handed on with the time it was read."""
        recv = conn.sock.recv
        for _ in range(READS_PER_CONNECTION):
            try:
                data = recv(proto.MAX_FRAME + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close_connection(conn)
                return
            if not data:
                self.close_connection(conn)
                return
            on_frame(conn, data, clock())

    def send(self, conn: Connection, data: bytes) -> bool:
        try:
            conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            self.counters["dropped_replies"] += 1
            return False
        except OSError:
            return False  # the peer is gone; its EOF closes the connection
        return True


def listen(path: Path) -> socket.socket:
    """Bind the SEQPACKET socket with mode 0600 from the start (umask), replacing
    only a stale socket file nobody listens on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise NetlabError("the agent socket path exists and is not a socket",
                              where=str(path), fix="remove it or choose another --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
        else:
            raise NetlabError("another agent is listening on this socket", where=str(path),
                              fix="stop it first or choose another --socket")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise NetlabError(f"cannot bind the agent socket: {exc.strerror}", where=str(path),
                          fix="use a path in an existing, writable directory (at most 107 "
                              "bytes)") from exc
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock
