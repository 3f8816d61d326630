"""The one clock both RTC processes read, and the send-time stamp in each payload.

Every time in the RTC processes' logs is ``time.monotonic_ns()``, i.e. Linux
CLOCK_MONOTONIC in nanoseconds. CLOCK_MONOTONIC belongs to the machine, not
to a network namespace (only a time namespace, CLONE_NEWTIME, could offset
it, and ``ip netns`` / the lab never create one), so a sender and a receiver
in two network namespaces of one machine read the same clock, and

    one-way delay = receiver arrival_ns − sender send_ns

exactly, up to the moments each process reads the clock (after ``recv``
returns, before ``sendto`` is called). No clock synchronisation is involved.

The sender writes a 16-byte stamp at the start of every RTP payload (the
payload is synthetic, so nothing is lost), big-endian::

    send_ns        int64   CLOCK_MONOTONIC ns just before sendto
    transport_seq  uint32  the transport-wide sequence number, unwrapped (low 32 bits)
    frame_id       uint32  index of the frame (video) or audio packet it carries

The receiver reads it back for an exact delay; abs-send-time (6.18 fixed
point, 3.8 µs units, wrapping every 64 s) stays in the header extension for
estimators that expect it, as AlphaRTC's do.
"""

from __future__ import annotations

import struct
import time

PAYLOAD_STAMP = struct.Struct("!qII")
STAMP_SIZE = PAYLOAD_STAMP.size  # 16
NO_FRAME = 0xFFFFFFFF


def now_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds (shared by every namespace on the machine)."""
    return time.monotonic_ns()


def stamp_payload(payload: bytes, send_ns: int, transport_seq: int, frame_id: int) -> bytes:
    """``payload`` with its first 16 bytes replaced by the stamp (grown to 16 if shorter)."""
    stamp = PAYLOAD_STAMP.pack(send_ns, transport_seq & 0xFFFFFFFF, frame_id & 0xFFFFFFFF)
    return stamp + payload[STAMP_SIZE:]


def read_stamp(payload: bytes, wire_transport_seq: int | None) -> tuple[int, int, int] | None:
    """(send_ns, transport_seq, frame_id) if ``payload`` carries a stamp that matches
    the packet's 16-bit transport sequence number; ``None`` otherwise (e.g. a foreign
    sender), so a random payload is not taken for a send time."""
    if len(payload) < STAMP_SIZE or wire_transport_seq is None:
        return None
    send_ns, transport_seq, frame_id = PAYLOAD_STAMP.unpack_from(payload, 0)
    if transport_seq & 0xFFFF != wire_transport_seq or send_ns <= 0:
        return None
    return send_ns, transport_seq, frame_id
