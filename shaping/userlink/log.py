"""Compact binary logs of what the link did, readable with numpy.

Packet log (one per direction): a 32-byte header then 32-byte records
``arrival_ns, departure_ns, due_ns, size, reason`` (little-endian).
``arrival_ns``: when the packet was read from the input interface
(CLOCK_MONOTONIC); ``departure_ns``: when it was written to the output
interface, -1 if dropped; ``due_ns``: when the link model said it should
leave (-1 if dropped), so ``departure_ns - due_ns`` is the process's timing
error; ``size``: IP packet bytes (the rate counts ``size + 14``, a whole
Ethernet frame, as tc does; in Mahimahi mode ``size + 4``); ``reason``: 0
delivered, else the drop cause (see ``engine.REASON_NAMES``).  Records are
written when a packet's fate is final, so they are ordered by completion, not
arrival.

Change log (one per direction): a 32-byte header then 64-byte records
``scheduled_ns, applied_ns, rate_bps (-1 = unshaped), delay_s, jitter_s, loss,
queue_packets (-1), queue_bytes (-1)``.

Header: the 8-byte magic, then ``status`` (u32), ``errno`` (u32) and the cap
in bytes (i64) at byte 8; ``status`` is
0 while the log is whole; 1 when it stopped at its size cap
(``NETLAB_LOG_CAP_MB``, default 1024 MiB per log: at 100 Mbit/s a packet log
grows ~1.4 GB/h); 2 when a write failed (``errno``, e.g. ENOSPC: a full disk)
and 3 when the writer thread fell more than ``MAX_PENDING_BYTES`` behind.
After any of these the log keeps what it had and records nothing more; the
status is rewritten in place, which needs no new disk block, so a full disk is
still reported (:func:`log_status`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcore.logcap import CAP_ENV, log_cap_bytes
from shaping.spec import LinkShape

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

PACKET_MAGIC = b"NLULPKT1"
CHANGE_MAGIC = b"NLULCHG1"
HEADER_BYTES = 32
PACKET_RECORD = struct.Struct("<qqqIB3x")
CHANGE_RECORD = struct.Struct("<qqqdddqq")
_FLUSH_BYTES = 1 << 16
STATUS = struct.Struct("<IIq")
STATUS_OFFSET = 8
OK, CAPPED, WRITE_FAILED, WRITER_BEHIND = 0, 1, 2, 3
#: Bytes queued for the writer thread before a log gives up (the queue is
#: bounded so a stalled disk cannot grow the link process's memory).
MAX_PENDING_BYTES = 64 << 20


class BackgroundWriter:
    """Writes log chunks from a thread, so a slow disk never stalls packet delivery.

    Writing to a busy ext4 page cache occasionally blocked the link process
    for milliseconds; ``os.write`` releases the GIL, so the packet loop keeps
    running while this thread waits on the disk.  The thread keeps the
    process's real-time priority on purpose: at normal priority it was
    preempted while holding the GIL and stalled the packet loop for 1-8 ms
    (priority inversion; delay error p99 fell from ~1-5 ms to ~0.25 ms).
    A failed write stops that one log (its header says why) instead of the
    thread, and at most ``max_pending`` bytes wait in the queue.
    """

    def __init__(self, max_pending: int = MAX_PENDING_BYTES) -> None:
        self._jobs: queue.SimpleQueue[tuple[_RecordFile, bytes] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.pending = 0
        self.max_pending = max_pending
        self._thread = threading.Thread(target=self._run, name="userlink-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            log, data = job
            with self._lock:
                self.pending -= len(data)
            log.write_now(data)

    def submit(self, log: _RecordFile, data: bytes) -> bool:
        """Queue ``data``; False (nothing queued) when the queue is full."""
        with self._lock:
            if self.pending + len(data) > self.max_pending:
                return False
            self.pending += len(data)
        self._jobs.put((log, data))
        return True

    def close(self) -> None:
        """Write everything submitted so far, then stop the thread."""
        self._jobs.put(None)
        self._thread.join()


class _RecordFile:
    """Append-only file of fixed-size records, buffered in memory and capped in size."""

    def __init__(self, path: Path, magic: bytes, writer: BackgroundWriter | None,
                 cap_bytes: int | None = None) -> None:
        self.path = path
        self.writer = writer
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        os.write(self.fd, magic.ljust(HEADER_BYTES, b"\0"))
        self.buffer = bytearray()
        self.cap_bytes = log_cap_bytes() if cap_bytes is None else cap_bytes
        self.room = self.cap_bytes - HEADER_BYTES
        self.status = OK

    def flush(self) -> None:
        if not self.buffer or self.fd < 0 or self.status != OK:
            self.buffer.clear()
            return
        data = bytes(self.buffer[: max(0, self.room)])
        self.buffer.clear()
        self.room -= len(data)
        if data:
            if self.writer is None:
                self.write_now(data)
            elif not self.writer.submit(self, data):
                self.stop(WRITER_BEHIND)
                return
        if self.room <= 0:
            self.stop(CAPPED)

    def write_now(self, data: bytes) -> None:
        """Write ``data`` (the writer thread's job); a failure stops this log."""
        view = memoryview(data)
        try:
            while view and self.fd >= 0:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self.stop(WRITE_FAILED, exc.errno or 0)

    def stop(self, status: int, errno: int = 0) -> None:
        """Record nothing more; say why in the header (a rewrite in place)."""
        if self.status != OK:
            return
        self.status = status
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.pwrite(self.fd, STATUS.pack(status, errno, self.cap_bytes), STATUS_OFFSET)

    def close(self) -> None:
        """Flush and close (with a BackgroundWriter: after closing the writer)."""
        self.flush()
        self.release()

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class PacketLogWriter(_RecordFile):
    def __init__(self, path: Path, writer: BackgroundWriter | None = None,
                 cap_bytes: int | None = None) -> None:
        super().__init__(path, PACKET_MAGIC, writer, cap_bytes)
        self._pack = PACKET_RECORD.pack

    def record(
        self, arrival_ns: int, departure_ns: int, due_ns: int, size: int, reason: int
    ) -> None:
        self.buffer += self._pack(arrival_ns, departure_ns, due_ns, size, reason)
        if len(self.buffer) >= _FLUSH_BYTES:
            self.flush()


class ChangeLogWriter(_RecordFile):
    def __init__(self, path: Path, writer: BackgroundWriter | None = None,
                 cap_bytes: int | None = None) -> None:
        super().__init__(path, CHANGE_MAGIC, writer, cap_bytes)

    def record(self, scheduled_ns: int, applied_ns: int, shape: LinkShape) -> None:
        queue_packets = queue_bytes = -1
        if shape.queue is not None:
            queue_packets = -1 if shape.queue.packets is None else shape.queue.packets
            queue_bytes = -1 if shape.queue.bytes is None else shape.queue.bytes
        self.buffer += CHANGE_RECORD.pack(
            scheduled_ns,
            applied_ns,
            -1 if shape.rate_bps is None else shape.rate_bps,
            shape.delay_s,
            shape.jitter_s,
            shape.loss,
            queue_packets,
            queue_bytes,
        )
        self.flush()  # changes are rare; keep the file current for live readers


def packet_dtype() -> np.dtype[Any]:
    import numpy as np

    return np.dtype(
        {
            "names": ["arrival_ns", "departure_ns", "due_ns", "size", "reason"],
            "formats": ["<i8", "<i8", "<i8", "<u4", "u1"],
            "offsets": [0, 8, 16, 24, 28],
            "itemsize": PACKET_RECORD.size,
        }
    )


def change_dtype() -> np.dtype[Any]:
    import numpy as np

    return np.dtype(
        [
            ("scheduled_ns", "<i8"),
            ("applied_ns", "<i8"),
            ("rate_bps", "<i8"),
            ("delay_s", "<f8"),
            ("jitter_s", "<f8"),
            ("loss", "<f8"),
            ("queue_packets", "<i8"),
            ("queue_bytes", "<i8"),
        ]
    )


def _read(path: Path, magic: bytes, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    import numpy as np

    with open(path, "rb") as f:
        header = f.read(HEADER_BYTES)
        if header[: len(magic)] != magic:
            raise ValueError(f"{path}: not a user-space link log (expected header {magic!r})")
        data = f.read()
    whole = len(data) - len(data) % dtype.itemsize  # a live writer may be mid-record
    return np.frombuffer(data[:whole], dtype=dtype).copy()


def read_packet_log(path: Path | str) -> npt.NDArray[Any]:
    """The per-packet log as a numpy structured array (fields as in the module doc)."""
    return _read(Path(path), PACKET_MAGIC, packet_dtype())


def read_change_log(path: Path | str) -> npt.NDArray[Any]:
    """The change log as a numpy structured array (fields as in the module doc)."""
    return _read(Path(path), CHANGE_MAGIC, change_dtype())


def log_status(path: Path | str) -> str | None:
    """Why a link log is incomplete, in words, or None when it is whole."""
    with open(path, "rb") as f:
        header = f.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES:
        return None
    status, errno, cap = STATUS.unpack_from(header, STATUS_OFFSET)
    if status == CAPPED:
        return f"truncated at its size cap of {cap / (1 << 20):g} MiB (raise {CAP_ENV})"
    if status == WRITE_FAILED:
        return f"truncated: a write failed ({os.strerror(errno)})"
    if status == WRITER_BEHIND:
        return "truncated: the disk fell more than 64 MiB behind the link"
    return None
