"""Recorded RTP arrivals: what a receiver got, to replay through an estimator later.

Like rtpdump's header-only form (``rtpdump -F header``), each received RTP
datagram is kept as its header bytes (fixed header, CSRCs and extensions),
its length and its padding count, with the arrival time; the payload is not
kept. One JSON object per line, optionally gzip-compressed (``.gz``)::

    {"arrival_ns": 123, "size": 1212, "header": "90600001...", "padding": 0}

``arrival_ns`` is the receiver's CLOCK_MONOTONIC. :func:`datagram` rebuilds a
datagram with the same header, length and padding (a zero payload), which is
all AlphaRTC's stats depend on.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from endpoints.rtc.errors import RtcError
from endpoints.rtc.rtp import RtpPacket


@dataclass(frozen=True)
class RecordedPacket:
    arrival_ns: int
    size: int  # the UDP payload's length
    header: bytes  # the RTP header with CSRCs and extensions
    padding: int  # RTP padding octets (RFC 3550 §5.1)

    def datagram(self) -> bytes:
        """A datagram with this header, size and padding; the payload zeroed."""
        body = self.size - len(self.header) - self.padding
        if body < 0:
            raise RtcError(f"recorded packet of {self.size} bytes is shorter than its header "
                           f"({len(self.header)}) and padding ({self.padding})",
                           where=f"arrival_ns {self.arrival_ns}",
                           fix="record the packets again with receiver_app --record")
        tail = bytes(self.padding - 1) + bytes((self.padding,)) if self.padding else b""
        return self.header + bytes(body) + tail


def _open(path: Path, *, write: bool) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "wt" if write else "rt", encoding="utf-8")
    return path.open("w" if write else "r", encoding="utf-8")


class Recorder:
    """Appends each received RTP datagram to a recording file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = _open(path, write=True)
        self.packets = 0

    def add(self, data: bytes, packet: RtpPacket, arrival_ns: int) -> None:
        header_length = len(data) - len(packet.payload) - packet.padding_size
        self._file.write(json.dumps({"arrival_ns": arrival_ns, "size": len(data),
                                     "header": data[:header_length].hex(),
                                     "padding": packet.padding_size},
                                    separators=(",", ":")) + "\n")
        self.packets += 1

    def close(self) -> None:
        self._file.close()


def read_recording(path: str | Path) -> Iterator[RecordedPacket]:
    """The recorded packets in arrival order; errors name the file and line."""
    path = Path(path)
    try:
        handle = _open(path, write=False)
    except OSError as exc:
        raise RtcError(f"cannot read the packet recording: {exc.strerror}", where=str(path),
                       fix="give a file written by receiver_app --record") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                yield RecordedPacket(int(record["arrival_ns"]), int(record["size"]),
                                     bytes.fromhex(record["header"]), int(record["padding"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise RtcError(f"not a recorded packet: {exc}", where=f"{path}:{number}",
                               fix="give a file written by receiver_app --record") from None
