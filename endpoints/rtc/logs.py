"""Binary logs of the RTC sender and receiver: writers for the processes,
readers (numpy) for the lab.

Why binary: a flow logs every packet (≈ 10 000 a second at 100 Mbit/s);
fixed-size little-endian records cost one ``struct.pack`` each to write and
one ``numpy.fromfile`` to read, and a crash loses at most the unflushed tail
(records are flushed every second and at exit).

File layout: a 512-byte header, then records back to back.

* header: ``NLRTCLOG`` then a JSON object, padded with spaces and ending in
  ``\\n`` at byte 511: ``{"version": 1, "kind": ..., "fields": [[name,
  struct code], ...], "record_size": N, "byteorder": "little", "clock":
  "CLOCK_MONOTONIC"}``. Readers build the dtype from ``fields``, so files
  stay readable when fields are added.
  A log that stopped early says why in the header's ``status`` (rewritten
  in place, so it works on a full disk too): each log is capped at
  ``NETLAB_LOG_CAP_MB`` MiB (default 1024), and a failed write (ENOSPC)
  stops that log instead of the endpoint.
* records: ``numpy.fromfile(path, dtype=dtype_of(kind), offset=512)``, or
  :func:`read_log`, which also drops a partial record at the end (a process
  killed while writing).

All ``*_ns`` times are CLOCK_MONOTONIC nanoseconds (see
:mod:`endpoints.rtc.clock`): the sender and receiver share that clock on one
machine, so one-way delay = ``receiver arrival_ns − sender send_ns`` exactly.

Kinds and fields (files ``<log-dir>/<kind>.bin``):

``sender_packets`` — one per RTP packet handed to the socket
    send_ns (q), transport_seq (I, unwrapped), ssrc (I), frame_id (I),
    rtp_seq (H), size (H, UDP payload bytes), payload_type (B),
    last_of_frame (B), send_error (B: 1 if sendto failed: socket buffer full)
``sender_frames`` — one per encoded video frame or audio packet
    capture_ns (q), frame_id (I), ssrc (I), size (I, media bytes), key (B)
``sender_rate`` — every 50 ms
    time_ns (q), target_bps (d), sent_bps (d, last 50 ms), encoder_bps (d),
    pacer_queue_bytes (I), pacer_queue_packets (I), delay_based_bps (d),
    loss_based_bps (d), loss_fraction (d, cumulative from feedback),
    rtt_ms (d, NaN until known), remb_bps (d, NaN until a REMB came),
    usage (b: -1 underusing, 0 normal, 1 overusing)
``receiver_packets`` — one per received RTP packet
    arrival_ns (q), send_ns (q, from the payload stamp; −1 without one),
    transport_seq (I, unwrapped), ssrc (I), frame_id (I, 0xFFFFFFFF without
    a stamp), rtp_seq (H), size (H), header_length (H), payload_type (B),
    marker (B)
``receiver_estimates`` — every poll of a receiver-side estimator
    time_ns (q), estimate_bps (q, as sent in REMB)
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcore.logcap import CAP_ENV, log_cap_bytes

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MAGIC = b"NLRTCLOG"
HEADER_SIZE = 512
VERSION = 1
DEFAULT_FLUSH_BYTES = 1 << 16
_NUMPY_CODES = {"q": "<i8", "Q": "<u8", "i": "<i4", "I": "<u4", "h": "<i2", "H": "<u2",
                "b": "i1", "B": "u1", "d": "<f8", "f": "<f4"}


@dataclass(frozen=True)
class LogKind:
    name: str
    fields: tuple[tuple[str, str], ...]

    @property
    def struct(self) -> struct.Struct:
        return struct.Struct("<" + "".join(code for _, code in self.fields))

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)


SENDER_PACKETS = LogKind("sender_packets", (
    ("send_ns", "q"), ("transport_seq", "I"), ("ssrc", "I"), ("frame_id", "I"),
    ("rtp_seq", "H"), ("size", "H"), ("payload_type", "B"), ("last_of_frame", "B"),
    ("send_error", "B")))
SENDER_FRAMES = LogKind("sender_frames", (
    ("capture_ns", "q"), ("frame_id", "I"), ("ssrc", "I"), ("size", "I"), ("key", "B")))
SENDER_RATE = LogKind("sender_rate", (
    ("time_ns", "q"), ("target_bps", "d"), ("sent_bps", "d"), ("encoder_bps", "d"),
    ("pacer_queue_bytes", "I"), ("pacer_queue_packets", "I"), ("delay_based_bps", "d"),
    ("loss_based_bps", "d"), ("loss_fraction", "d"), ("rtt_ms", "d"), ("remb_bps", "d"),
    ("usage", "b")))
RECEIVER_PACKETS = LogKind("receiver_packets", (
    ("arrival_ns", "q"), ("send_ns", "q"), ("transport_seq", "I"), ("ssrc", "I"),
    ("frame_id", "I"), ("rtp_seq", "H"), ("size", "H"), ("header_length", "H"),
    ("payload_type", "B"), ("marker", "B")))
RECEIVER_ESTIMATES = LogKind("receiver_estimates", (("time_ns", "q"), ("estimate_bps", "q")))

KINDS = {kind.name: kind for kind in (SENDER_PACKETS, SENDER_FRAMES, SENDER_RATE,
                                      RECEIVER_PACKETS, RECEIVER_ESTIMATES)}


def log_path(log_dir: str | os.PathLike[str], kind: LogKind) -> Path:
    return Path(log_dir) / f"{kind.name}.bin"


def _header(kind: LogKind, status: str | None = None) -> bytes:
    meta: dict[str, Any] = {
        "version": VERSION, "kind": kind.name, "fields": [list(f) for f in kind.fields],
        "record_size": kind.struct.size, "byteorder": "little", "clock": "CLOCK_MONOTONIC"}
    if status is not None:
        meta["status"] = status
    body = MAGIC + json.dumps(meta, separators=(",", ":")).encode()
    if len(body) > HEADER_SIZE - 1:
        raise ValueError(f"log header for {kind.name} exceeds {HEADER_SIZE} bytes")
    return body + b" " * (HEADER_SIZE - 1 - len(body)) + b"\n"


class LogWriter:
    """Appends fixed-size records; buffers up to ``flush_bytes`` between writes.

    Stops at ``cap_bytes`` or at the first failed write, and says so in the header.
    """

    def __init__(self, path: str | os.PathLike[str], kind: LogKind, *,
                 flush_bytes: int = DEFAULT_FLUSH_BYTES, cap_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.kind = kind
        self._pack = kind.struct.pack
        self._flush_bytes = flush_bytes
        self._buffer = bytearray()
        self._file = open(self.path, "wb")  # noqa: SIM115 (kept open for the run)
        self._file.write(_header(kind))
        self._file.flush()
        self.cap_bytes = log_cap_bytes() if cap_bytes is None else cap_bytes
        self._room = self.cap_bytes - HEADER_SIZE
        self.status: str | None = None
        self.records = 0

    def append(self, *values: Any) -> None:
        self._buffer += self._pack(*values)
        self.records += 1
        if len(self._buffer) >= self._flush_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._buffer or self.status is not None:
            self._buffer.clear()
            return
        size = self.kind.struct.size
        data = self._buffer[: max(0, self._room) // size * size]
        self._room -= len(data)
        capped = len(data) < len(self._buffer)
        self._buffer.clear()
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            self._stop(f"truncated: a write failed ({exc.strerror})")
            return
        if capped:
            self._stop(f"truncated at its size cap of {self.cap_bytes / (1 << 20):g} MiB "
                       f"(raise {CAP_ENV})")

    def _stop(self, status: str) -> None:
        self.status = status
        with contextlib.suppress(OSError, ValueError):
            os.pwrite(self._file.fileno(), _header(self.kind, status), 0)

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            with contextlib.suppress(OSError):
                self._file.close()


class NullWriter:
    """Stands in for a writer when the process runs without ``--log-dir``."""

    records = 0

    def append(self, *values: Any) -> None:
        self.records += 1

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


Writer = LogWriter | NullWriter


def open_writer(log_dir: Path | None, kind: LogKind) -> Writer:
    return NullWriter() if log_dir is None else LogWriter(log_path(log_dir, kind), kind)


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header's JSON object; raises ValueError naming the file if it is not a log."""
    with open(path, "rb") as handle:
        raw = handle.read(HEADER_SIZE)
    if len(raw) < HEADER_SIZE or not raw.startswith(MAGIC):
        raise ValueError(f"{path}: not an RTC log (no {MAGIC.decode()} header); "
                         "fix: pass a <kind>.bin file written by sender_app/receiver_app")
    meta: dict[str, Any] = json.loads(raw[len(MAGIC):].decode().strip())
    return meta


def log_status(path: str | os.PathLike[str]) -> str | None:
    """Why a log is incomplete, in words, or None when it is whole."""
    status = read_header(path).get("status")
    return str(status) if status is not None else None


def dtype_of(fields: list[list[str]] | tuple[tuple[str, str], ...]) -> np.dtype[Any]:
    import numpy as np

    return np.dtype([(str(name), _NUMPY_CODES[str(code)]) for name, code in fields])


def read_log(path: str | os.PathLike[str]) -> npt.NDArray[Any]:
    """All complete records of one log as a numpy structured array."""
    import numpy as np

    meta = read_header(path)
    dtype = dtype_of(meta["fields"])
    if dtype.itemsize != meta["record_size"]:
        raise ValueError(f"{path}: header says {meta['record_size']}-byte records but its "
                         f"fields make {dtype.itemsize}")
    size = os.path.getsize(path) - HEADER_SIZE
    count = max(0, size) // dtype.itemsize
    return np.fromfile(path, dtype=dtype, count=count, offset=HEADER_SIZE)


def read_kind(log_dir: str | os.PathLike[str], kind: LogKind) -> npt.NDArray[Any]:
    return read_log(log_path(log_dir, kind))
