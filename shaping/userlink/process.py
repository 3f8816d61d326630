"""The link process: ``python -m shaping.userlink --spec FILE``.

One single-threaded loop: wait (``select`` with a microsecond timeout, until
the next link event) on both TUN fds, the control socket and a signal wake-up
pipe; read every waiting packet (up to a batch per fd) stamping each with
CLOCK_MONOTONIC; run both direction engines up to now; write what is due.
``select`` is used because its timeout has microsecond resolution (epoll and
poll round up to whole milliseconds), and SIGTERM wakes it through
``signal.set_wakeup_fd`` (a blocking select alone ignored SIGTERM here).

The process raises its priority where permitted (the ladder's top rung in
:mod:`labcore.priority`: SCHED_FIFO, else a negative nice) and drops timer
slack to 1 ns, since wake-up lateness is the link's delay error.  A
``restart_ns`` control message (the run's one time zero, sent to every link
of a lab at once) makes both directions count their traces from that instant;
the link writes it and its arrival to ``<link>.clock.json``.  It exits on

SIGTERM/SIGINT, or by itself when its TUN devices vanish (the lab deleted the
namespaces), so it cannot outlive its lab.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

from labcore.jsonfile import write_json_atomic
from labcore.priority import SHAPING, raise_priority
from shaping.spec import LinkShape

from .config import DIRECTIONS, DirectionName, UserLinkSpec, spec_from_json
from .control import MAX_DATAGRAM, control_path, decode_message
from .engine import REASON_DELIVERED, REASON_WRITE_ERROR, DirectionEngine
from .errors import UserLinkError
from .log import BackgroundWriter, ChangeLogWriter, PacketLogWriter
from .wiring import netns_path, open_tun

ERROR_PREFIX = "USERLINK-ERROR "
READ_BATCH = 64  # packets read per fd per wake-up (draining beats one read per select)
MAX_WAIT_S = 0.25  # upper bound on a select, for housekeeping (log flush)
FLUSH_EVERY_NS = 200_000_000
# Errors that mean the TUN device is gone (namespace deleted): exit, nothing to serve.
DEVICE_GONE = {errno.EBADFD, errno.EIO, errno.ENODEV, errno.ENXIO}


def packet_log_path(run_dir: Path, link_id: str, direction: DirectionName) -> Path:
    return run_dir / f"{link_id}.{direction}.pkt"


def change_log_path(run_dir: Path, link_id: str, direction: DirectionName) -> Path:
    return run_dir / f"{link_id}.{direction}.changes"


def clock_path(run_dir: Path, link_id: str) -> Path:
    """Where the link records the run's time zero it was given and when it got it."""
    return run_dir / f"{link_id}.clock.json"


class LinkProcess:
    """Moves packets between the two TUN fds through the two direction engines."""

    def __init__(self, spec: UserLinkSpec) -> None:
        self.spec = spec
        self.stopping = False
        self.fd_a = -1
        self.fd_b = -1
        self.ctl: socket.socket | None = None
        self.ctl_path = control_path(spec.run_dir, spec.link_id)
        self.packet_logs: dict[DirectionName, PacketLogWriter] = {}
        self.change_logs: dict[DirectionName, ChangeLogWriter] = {}
        self.engines: dict[DirectionName, DirectionEngine] = {}
        self.log_writer: BackgroundWriter | None = None
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.exit_reason = "stopped"
        self.namespaces: dict[str, tuple[Path, int]] = {}

    # --- setup ---------------------------------------------------------------

    def open(self) -> int:
        """Attach to the interfaces, bind the control socket, start the clocks."""
        spec = self.spec
        for ns in (spec.ns_a, spec.ns_b):
            path = netns_path(ns)
            self.namespaces[ns] = (path, os.stat(path).st_ino)
        self.fd_a = open_tun(spec.ns_a, spec.if_a)
        self.fd_b = open_tun(spec.ns_b, spec.if_b)
        with contextlib.suppress(FileNotFoundError):
            self.ctl_path.unlink()
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        ctl.bind(str(self.ctl_path))
        ctl.setblocking(False)
        self.ctl = ctl
        self.log_writer = writer = BackgroundWriter()
        for direction in DIRECTIONS:
            self.packet_logs[direction] = PacketLogWriter(
                packet_log_path(spec.run_dir, spec.link_id, direction), writer
            )
            self.change_logs[direction] = ChangeLogWriter(
                change_log_path(spec.run_dir, spec.link_id, direction), writer
            )
        start_ns = spec.start_ns if spec.start_ns is not None else time.monotonic_ns()
        for direction in DIRECTIONS:
            plog = self.packet_logs[direction]
            clog = self.change_logs[direction]

            def on_drop(
                arrival_ns: int, size: int, reason: int, now_ns: int, plog: PacketLogWriter = plog
            ) -> None:
                plog.record(arrival_ns, -1, -1, size, reason)

            def on_change(
                scheduled_ns: int, applied_ns: int, shape: LinkShape, clog: ChangeLogWriter = clog
            ) -> None:
                clog.record(scheduled_ns, applied_ns, shape)

            self.engines[direction] = DirectionEngine(
                spec.direction(direction), start_ns, on_drop, on_change
            )
        return start_ns

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def install_signals(self) -> None:
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # --- the loop ------------------------------------------------------------

    def _read_input(self, fd: int, engine: DirectionEngine) -> None:
        arrive = engine.arrive
        clock = time.monotonic_ns
        for _ in range(READ_BATCH):
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in DEVICE_GONE:
                    self.stopping = True
                    self.exit_reason = f"interface gone ({os.strerror(exc.errno or 0)})"
                    return
                raise
            if not data:
                return
            arrive(clock(), data)

    def _deliver(self, engine: DirectionEngine, fd: int, log: PacketLogWriter, now: int) -> None:
        engine.advance(now)
        due_packets = engine.pop_due(now)
        if not due_packets:
            return
        clock = time.monotonic_ns
        record = log.record
        write = os.write
        for due_ns, (arrival_ns, size, payload) in due_packets:
            departure_ns = clock()
            try:
                write(fd, payload)
            except OSError as exc:
                record(arrival_ns, -1, due_ns, size, REASON_WRITE_ERROR)
                if exc.errno in DEVICE_GONE:
                    self.stopping = True
                    self.exit_reason = f"interface gone ({os.strerror(exc.errno or 0)})"
                continue
            record(arrival_ns, departure_ns, due_ns, size, REASON_DELIVERED)

    def _read_control(self) -> None:
        assert self.ctl is not None
        for _ in range(64):
            try:
                data = self.ctl.recv(MAX_DATAGRAM)
            except BlockingIOError:
                return
            try:
                message = decode_message(data)
            except ValueError as exc:
                print(f"userlink {self.spec.link_id}: ignored message: {exc}", file=sys.stderr)
                continue
            now = time.monotonic_ns()
            if isinstance(message, int):
                self._restart(message, now)
                continue
            direction, shape, scheduled_ns = message
            self.engines[direction].change(now, shape, scheduled_ns)

    def _restart(self, restart_ns: int, now: int) -> None:
        """Both directions count their traces from ``restart_ns``; the instant and
        when it arrived are written down (once a run, before its zero)."""
        for engine in self.engines.values():
            engine.restart(restart_ns, now)
        write_json_atomic(clock_path(self.spec.run_dir, self.spec.link_id),
                          {"trace_zero_ns": restart_ns, "received_ns": now,
                           "clock": "CLOCK_MONOTONIC"})


    def _namespaces_gone(self) -> str | None:
        """A deleted namespace name: our open TUN fds keep the namespace itself
        (and its devices) alive, so its pinned name is what ``down`` removes."""
        for ns, (path, inode) in self.namespaces.items():
            try:
                if os.stat(path).st_ino == inode:
                    continue
            except FileNotFoundError:
                pass
            return ns
        return None

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def run(self) -> None:
        assert self.ctl is not None
        ab = self.engines["a_to_b"]
        ba = self.engines["b_to_a"]
        log_ab = self.packet_logs["a_to_b"]
        log_ba = self.packet_logs["b_to_a"]
        fd_a, fd_b, ctl_fd, wake_r = self.fd_a, self.fd_b, self.ctl.fileno(), self.wake_r
        readers = [fd_a, fd_b, ctl_fd, wake_r]
        clock = time.monotonic_ns
        next_flush = clock() + FLUSH_EVERY_NS
        while not self.stopping:
            now = clock()
            t_ab = ab.next_event_ns()
            t_ba = ba.next_event_ns()
            nxt = t_ab if t_ba is None or (t_ab is not None and t_ab < t_ba) else t_ba
            wait = MAX_WAIT_S if nxt is None else min(MAX_WAIT_S, max(0, nxt - now) / 1e9)
            ready = select.select(readers, [], [], wait)[0]
            for fd in ready:
                if fd == fd_a:
                    self._read_input(fd_a, ab)
                elif fd == fd_b:
                    self._read_input(fd_b, ba)
                elif fd == ctl_fd:
                    self._read_control()
                else:
                    self._drain_wake_pipe()
            now = clock()
            self._deliver(ab, fd_b, log_ab, now)
            self._deliver(ba, fd_a, log_ba, now)
            if now >= next_flush:
                log_ab.flush()
                log_ba.flush()
                next_flush = now + FLUSH_EVERY_NS
                gone = self._namespaces_gone()
                if gone is not None:
                    self.exit_reason = f"namespace {gone} deleted"
                    self.stopping = True

    # --- teardown ------------------------------------------------------------

    def close(self) -> None:
        now = time.monotonic_ns()
        for engine in self.engines.values():
            engine.shutdown(now)
        files = [*self.packet_logs.values(), *self.change_logs.values()]
        for record_file in files:
            record_file.flush()
        if self.log_writer is not None:
            self.log_writer.close()
        for record_file in files:
            record_file.release()
        if self.ctl is not None:
            self.ctl.close()
            with contextlib.suppress(FileNotFoundError):
                self.ctl_path.unlink()
        for fd in (self.fd_a, self.fd_b, self.wake_r, self.wake_w):
            if fd >= 0:
                os.close(fd)
        self.fd_a = self.fd_b = self.wake_r = self.wake_w = -1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shaping.userlink", description=__doc__)
    parser.add_argument("--spec", required=True, type=Path, help="UserLinkSpec as JSON")
    parser.add_argument(
        "--priority", choices=["fifo", "nice", "none"], default="fifo",
        help="scheduling class to ask for (falls back when not permitted)",
    )
    args = parser.parse_args(argv)
    spec = spec_from_json(args.spec.read_text())
    link = LinkProcess(spec)
    try:
        return _serve(link, args.priority)
    except UserLinkError as exc:
        # One machine-readable line: the launcher turns it back into this error.
        fields = {"what": exc.what, "where": exc.where, "fix": exc.fix}
        sys.stderr.write(f"{ERROR_PREFIX}{json.dumps(fields)}\n")
        return 2


def _serve(link: LinkProcess, priority: str) -> int:
    spec = link.spec
    try:
        link.install_signals()
        got = raise_priority(priority, SHAPING).policy  # the top rung, with the replayers
        start_ns = link.open()
        # The parent waits for this line: forwarding starts right after it.
        sys.stdout.write(f"ready {start_ns} {os.getpid()} {got}\n")
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        # The loop makes no reference cycles; a collector pass over the
        # interpreter's objects would be a multi-millisecond delivery stall.
        gc.collect()
        gc.freeze()
        gc.disable()
        link.run()
        print(f"userlink {spec.link_id}: exiting: {link.exit_reason}", file=sys.stderr)
    finally:
        link.close()
    return 0
