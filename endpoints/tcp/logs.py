"""On-disk formats of the TCP endpoints, with their writers and readers.

Every binary log is a headerless stream of fixed-size little-endian records,
so ``numpy.fromfile(path, dtype=DTYPE)`` reads it with no code from here (the
readers below do the same and also drop a partial last record, which only a
SIGKILL mid-write can leave). Times are ``CLOCK_MONOTONIC`` nanoseconds
(``time.monotonic_ns()``): one clock for every process on the machine,
network namespaces included, so sender, receiver, RTC and link logs line up
exactly.

Sender directory (``--log-dir``)::

    tcp_info.bin   TCP_INFO_DTYPE, one record per 10 ms sample
    pacing.bin     PACING_DTYPE, one record per rate command applied
    sender.json    metadata: cc, mode, destination, start/end, counters,
                   end_reason; format "netlab-tcp-sender/1"
    live.jsonl     one JSON object per 250 ms for a live view (appended)

Receiver directory (may be the sender's: no file names collide)::

    recv_bins.bin  RECV_BIN_DTYPE, one record per 10 ms bin, contiguous
                   (zero-byte bins included, so an outage shows as zeros)
    receiver.json  metadata; format "netlab-tcp-receiver/1"
    live.jsonl     as above (srtt_ms/cwnd/retrans are the sender's business
                   and are null here)

``live.jsonl`` lines: ``{"time": <monotonic s>, "t_s": <s since start>,
"role": "sender"|"receiver", "rate_bps": ..., "srtt_ms": ..., "cwnd": ...,
"retrans": ...}``. The sender's ``rate_bps`` is acked goodput
(``bytes_acked`` delta) over the last 250 ms, the receiver's is bytes read.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt

from endpoints.tcp.tcp_info import KERNEL_FIELDS
from labcore.jsonfile import write_json_atomic
from labcore.logcap import CAP_ENV, log_cap_bytes

SAMPLE_INTERVAL_NS: Final = 10_000_000
BIN_NS: Final = 10_000_000
LIVE_INTERVAL_NS: Final = 250_000_000

TCP_INFO_FILE: Final = "tcp_info.bin"
PACING_FILE: Final = "pacing.bin"
RECV_BINS_FILE: Final = "recv_bins.bin"
SENDER_META_FILE: Final = "sender.json"
RECEIVER_META_FILE: Final = "receiver.json"
LIVE_FILE: Final = "live.jsonl"

SENDER_FORMAT: Final = "netlab-tcp-sender/1"
RECEIVER_FORMAT: Final = "netlab-tcp-receiver/1"

_KERNEL_CODES: Final = {"B": "u1", "I": "<u4", "Q": "<u8"}

#: One TCP_INFO sample. ``t_ns``: when getsockopt ran; ``deadline_ns``: the
#: 10 ms grid point it was taken for (``t_ns - deadline_ns`` is the sampling
#: lateness); ``app_bytes``: bytes the application had handed to the socket
#: so far. The rest are the kernel's fields (see endpoints.tcp.tcp_info for
#: units); ``app_limited`` is tcpi_delivery_rate_app_limited.
TCP_INFO_DTYPE: Final = np.dtype(
    [("t_ns", "<i8"), ("deadline_ns", "<i8"), ("app_bytes", "<u8")]
    + [
        ("app_limited" if name == "flags7" else name, _KERNEL_CODES[code])
        for name, _offset, code in KERNEL_FIELDS
    ]
)

#: One applied SO_MAX_PACING_RATE command. ``t_recv_ns``: the datagram was
#: read; ``t_applied_ns``: setsockopt returned; ``requested_Bps``: the value
#: sent; ``applied_Bps``: the value given to the kernel (after clamping).
PACING_DTYPE: Final = np.dtype(
    [("t_recv_ns", "<i8"), ("t_applied_ns", "<i8"), ("requested_Bps", "<u8"),
     ("applied_Bps", "<u8")]
)

#: Bytes read by the receiver application in ``[bin_start_ns, bin_start_ns + 10 ms)``.
#: Bins lie on a grid of multiples of 10 ms of the monotonic clock, so bins of
#: different receivers line up.
RECV_BIN_DTYPE: Final = np.dtype([("bin_start_ns", "<i8"), ("bytes", "<u8")])


class RecordLog:
    """Append-only binary log of fixed-size records, buffered in memory and
    written out on :meth:`flush` (callers flush every 250 ms and on exit, so
    a SIGTERM loses nothing and the loop never blocks on disk per sample).

    The file stops growing at ``NETLAB_LOG_CAP_MB`` MiB (default 1024) or at
    the first failed write (a full disk); then ``status`` says why and a
    ``<file>.status`` file beside it records that for the lab."""

    def __init__(self, path: Path, dtype: np.dtype[Any], capacity: int = 1024,
                 cap_bytes: int | None = None) -> None:
        self.path = path
        self.dtype = dtype
        self._buffer = np.zeros(capacity, dtype=dtype)
        self._used = 0
        self.records_written = 0
        self.cap_bytes = log_cap_bytes() if cap_bytes is None else cap_bytes
        self.status: str | None = None
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()

    def append(self, record: tuple[Any, ...]) -> None:
        if self._used == len(self._buffer):
            self.flush()
        self._buffer[self._used] = record
        self._used += 1

    def flush(self) -> None:
        used, self._used = self._used, 0
        if self.status is not None:
            return
        room = self.cap_bytes // self.dtype.itemsize - self.records_written
        count = max(0, min(used, room))
        try:
            self._file.write(self._buffer[:count].tobytes())
            self._file.flush()
        except OSError as exc:
            self._stop(f"truncated: a write failed ({exc.strerror})")
            return
        self.records_written += count
        if count < used:
            self._stop(f"truncated at its size cap of {self.cap_bytes / (1 << 20):g} MiB "
                       f"(raise {CAP_ENV})")

    def _stop(self, status: str) -> None:
        self.status = status
        with contextlib.suppress(OSError):
            status_path(self.path).write_text(status + "\n", encoding="utf-8")

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            with contextlib.suppress(OSError):
                self._file.close()


def status_path(path: Path) -> Path:
    """Where a capped or failed log says why."""
    return path.with_name(path.name + ".status")


class LiveLog:
    """``live.jsonl``: one line per 250 ms, flushed at once so a viewer
    tailing the file sees it. Opened with O_APPEND and written one line per
    write(), so a sender and a receiver sharing a log directory share the
    file without overwriting each other's lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, entry: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Write metadata atomically (rename), so a reader never sees half a file."""
    write_json_atomic(path, meta, indent=2, sort_keys=True, trailing_newline=True)


def read_records(path: Path, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """All whole records in ``path`` (a partial trailing record is dropped)."""
    raw = Path(path).read_bytes()
    whole = len(raw) - len(raw) % dtype.itemsize
    return np.frombuffer(raw[:whole], dtype=dtype).copy()


def read_tcp_info_log(log_dir: Path) -> npt.NDArray[Any]:
    """The sender's TCP_INFO samples (``TCP_INFO_DTYPE``)."""
    return read_records(Path(log_dir) / TCP_INFO_FILE, TCP_INFO_DTYPE)


def read_pacing_log(log_dir: Path) -> npt.NDArray[Any]:
    """The sender's applied pacing commands (``PACING_DTYPE``); empty if none."""
    path = Path(log_dir) / PACING_FILE
    if not path.exists():
        return np.zeros(0, dtype=PACING_DTYPE)
    return read_records(path, PACING_DTYPE)


def read_recv_bins(log_dir: Path) -> npt.NDArray[Any]:
    """The receiver's bytes per 10 ms bin (``RECV_BIN_DTYPE``)."""
    return read_records(Path(log_dir) / RECV_BINS_FILE, RECV_BIN_DTYPE)


def read_meta(log_dir: Path, role: str) -> dict[str, Any]:
    """``sender.json`` or ``receiver.json`` (``role`` is "sender" or "receiver")."""
    name = {"sender": SENDER_META_FILE, "receiver": RECEIVER_META_FILE}[role]
    data: dict[str, Any] = json.loads((Path(log_dir) / name).read_text(encoding="utf-8"))
    return data


def read_live(log_dir: Path, role: str | None = None) -> list[dict[str, Any]]:
    """Every ``live.jsonl`` entry, optionally of one ``role`` only (a
    half-written last line is skipped)."""
    entries: list[dict[str, Any]] = []
    path = Path(log_dir) / LIVE_FILE
    if not path.exists():
        return entries
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if role is None or entry.get("role") == role:
            entries.append(entry)
    return entries
