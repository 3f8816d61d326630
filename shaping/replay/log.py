"""The replayer's compact binary log: every change (scheduled vs applied) and counter sample.

One file per link direction: a 32-byte header (magic, ``start_ns``,
``period_ns``, flags) then 80-byte little-endian records, each tagged.  Flags:
bit 0 the trace loops; bits 8-15 the log's status (0 whole, 1 stopped at its
size cap, 2 a write failed), bits 16-31 the failed write's errno (ENOSPC: a
full disk) and bits 32-63 the cap in MiB (``NETLAB_LOG_CAP_MB``, as for the
user-space link's logs).  The flags are rewritten in place, so a full disk is
still recorded.  Records:

* change (tag 1): ``scheduled_ns, called_ns, applied_ns, rate_bps, delay_s,
  jitter_s, loss, queue_packets, queue_bytes``.  ``called_ns`` is when the
  replayer woke and called the backend, ``applied_ns`` when the backend (the
  kernel's netlink ack) confirmed it; ``applied_ns - scheduled_ns`` is the
  timing error.  A change that was already superseded when the replayer got
  to it (it woke after the next deadline too) is never sent: ``called_ns``
  is -1 and ``applied_ns`` the time its successor took effect.  ``rate_bps``
  -1 means unshaped; queue fields -1 mean not given.
* sample (tag 2): ``t_ns, bytes, packets, drops, backlog_bytes,
  backlog_packets, loss_drops, overlimits, read_ns`` — the shaping qdisc's
  counters (``Shaper.stats()``), ``t_ns`` the middle of the read and
  ``read_ns`` its duration.

All times are CLOCK_MONOTONIC nanoseconds (one clock for every process on the
machine, so logs of different processes line up).
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labcore.logcap import CAP_ENV, log_cap_bytes
from shaping.spec import LinkShape

MAGIC = b"NLRPLOG1"
HEADER = struct.Struct("<8sqqq")
HEADER_BYTES = 32
TAG_CHANGE = 1
TAG_SAMPLE = 2
CHANGE_RECORD = struct.Struct("<qqqqqdddqq")
SAMPLE_RECORD = struct.Struct("<qqqqqqqqqq")
RECORD_BYTES = 80
_FLUSH_EVERY_NS = 1_000_000_000
_FLUSH_BYTES = 1 << 16
_OK, _CAPPED, _WRITE_FAILED = 0, 1, 2

CHANGE_DTYPE = np.dtype(
    [
        ("tag", "<i8"),
        ("scheduled_ns", "<i8"),
        ("called_ns", "<i8"),
        ("applied_ns", "<i8"),
        ("rate_bps", "<i8"),
        ("delay_s", "<f8"),
        ("jitter_s", "<f8"),
        ("loss", "<f8"),
        ("queue_packets", "<i8"),
        ("queue_bytes", "<i8"),
    ]
)
SAMPLE_DTYPE = np.dtype(
    [
        ("tag", "<i8"),
        ("t_ns", "<i8"),
        ("bytes", "<i8"),
        ("packets", "<i8"),
        ("drops", "<i8"),
        ("backlog_bytes", "<i8"),
        ("backlog_packets", "<i8"),
        ("loss_drops", "<i8"),
        ("overlimits", "<i8"),
        ("read_ns", "<i8"),
    ]
)
assert CHANGE_RECORD.size == SAMPLE_RECORD.size == RECORD_BYTES == CHANGE_DTYPE.itemsize


class ReplayLogWriter:
    """Append-only, buffered in memory; flushed every 64 KiB, on ``flush()`` and ``close()``,
    and at a sample a second after the last flush (a lab that stays up is read while it runs).

    Buffering keeps a ``write`` syscall off the replay path except once every
    ~800 records.
    """

    def __init__(self, path: Path, start_ns: int, period_ns: int, loop: bool, *,
                 cap_bytes: int | None = None) -> None:
        self.path = path
        self._cap = log_cap_bytes() if cap_bytes is None else cap_bytes
        self._room = self._cap - HEADER_BYTES
        self._header = (start_ns, period_ns, int(loop))
        self._status = _OK
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        os.write(self._fd, HEADER.pack(MAGIC, start_ns, period_ns, int(loop)))
        self._buffer = bytearray()
        self._flushed_ns = start_ns

    def change(self, scheduled_ns: int, called_ns: int, applied_ns: int, shape: LinkShape) -> None:
        queue = shape.queue
        self._buffer += CHANGE_RECORD.pack(
            TAG_CHANGE,
            scheduled_ns,
            called_ns,
            applied_ns,
            -1 if shape.rate_bps is None else shape.rate_bps,
            shape.delay_s,
            shape.jitter_s,
            shape.loss,
            -1 if queue is None or queue.packets is None else queue.packets,
            -1 if queue is None or queue.bytes is None else queue.bytes,
        )
        if len(self._buffer) >= _FLUSH_BYTES:
            self.flush()

    def sample(self, t_ns: int, read_ns: int, stats: dict[str, int]) -> None:
        get = stats.get
        self._buffer += SAMPLE_RECORD.pack(
            TAG_SAMPLE,
            t_ns,
            get("bytes", 0),
            get("packets", 0),
            get("drops", 0),
            get("backlog_bytes", 0),
            get("backlog_packets", 0),
            get("loss_drops", 0),
            get("overlimits", 0),
            read_ns,
        )
        if len(self._buffer) >= _FLUSH_BYTES or t_ns - self._flushed_ns >= _FLUSH_EVERY_NS:
            self.flush()
            self._flushed_ns = t_ns

    def flush(self) -> None:
        if not self._buffer or self._fd < 0 or self._status != _OK:
            self._buffer.clear()
            return
        data = memoryview(bytes(self._buffer[: max(0, self._room)]))
        self._buffer.clear()
        self._room -= len(data)
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            self._stop(_WRITE_FAILED, exc.errno or 0)
            return
        if self._room <= 0:
            self._stop(_CAPPED)

    def _stop(self, status: int, errno: int = 0) -> None:
        """Record nothing more; say why in the header's flags."""
        self._status = status
        start_ns, period_ns, loop = self._header
        flags = loop | status << 8 | (errno & 0xFFFF) << 16 | (self._cap >> 20) << 32
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, HEADER.pack(MAGIC, start_ns, period_ns, flags), 0)

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class ReplayLog:
    """A replay log read back: ``changes`` and ``samples`` as numpy structured arrays."""

    start_ns: int
    period_ns: int
    loop: bool
    changes: npt.NDArray[Any]
    samples: npt.NDArray[Any]
    status: str | None = None
    """Why the log is incomplete, in words; None when it is whole."""


def read_replay_log(path: Path | str) -> ReplayLog:
    """Read a log (also while it is being written: a partial last record is ignored)."""
    with open(path, "rb") as f:
        header = f.read(HEADER_BYTES)
        data = f.read()
    if len(header) < HEADER_BYTES or header[:8] != MAGIC:
        raise ValueError(f"{path}: not a replay log (expected header {MAGIC!r})")
    _, start_ns, period_ns, flags = HEADER.unpack(header)
    whole = len(data) - len(data) % RECORD_BYTES
    raw = data[:whole]
    tags = np.frombuffer(raw, dtype="<i8").reshape(-1, RECORD_BYTES // 8)[:, 0]
    changes = np.frombuffer(raw, dtype=CHANGE_DTYPE)[tags == TAG_CHANGE].copy()
    samples = np.frombuffer(raw, dtype=SAMPLE_DTYPE)[tags == TAG_SAMPLE].copy()
    return ReplayLog(start_ns, period_ns, bool(flags & 1), changes, samples,
                     _status_words(flags))


def _status_words(flags: int) -> str | None:
    status, errno, cap_mib = flags >> 8 & 0xFF, flags >> 16 & 0xFFFF, flags >> 32
    if status == _CAPPED:
        return f"truncated at its size cap of {cap_mib} MiB (raise {CAP_ENV})"
    if status == _WRITE_FAILED:
        return f"truncated: a write failed ({os.strerror(errno)})"
    return None
