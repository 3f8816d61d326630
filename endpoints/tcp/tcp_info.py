"""Read ``struct tcp_info`` (getsockopt TCP_INFO) by byte offsets.

Python's ``socket`` module has no TCP_INFO parser, so the fields are read at
their offsets in ``struct tcp_info`` from the kernel UAPI header
``include/uapi/linux/tcp.h`` (installed as ``/usr/include/linux/tcp.h``).
The offsets below were checked with ``offsetof()`` against that header
(linux-libc-dev for kernel 6.x; ``sizeof(struct tcp_info)`` = 232 there) and
a test recompiles the check where a C compiler is present. The struct only
ever grows at its end, so these offsets hold for every kernel that has the
field; a kernel that returns a shorter struct leaves the missing tail zero
(its length is reported so a reader can tell).

Units, as the kernel reports them: times in microseconds (``rto``, ``rtt``,
``rttvar``, ``min_rtt``, ``busy_time``, ...), ``snd_cwnd`` and
``snd_ssthresh`` in segments of ``snd_mss`` bytes, ``pacing_rate``,
``max_pacing_rate`` and ``delivery_rate`` in bytes per second.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

#: ``TCP_INFO`` from linux/tcp.h (Python's socket module exports it on Linux).
TCP_INFO: Final = getattr(socket, "TCP_INFO", 11)
#: ``TCP_CONGESTION`` from linux/tcp.h.
TCP_CONGESTION: Final = getattr(socket, "TCP_CONGESTION", 13)
#: ``SO_MAX_PACING_RATE`` from asm-generic/socket.h (not exported by Python).
SO_MAX_PACING_RATE: Final = 47

#: Room asked of the kernel; it copies ``min(len, sizeof(struct tcp_info))``.
TCP_INFO_REQUEST_LEN: Final = 512

#: (log field name, byte offset in struct tcp_info, struct format char).
#: Names drop the ``tcpi_`` prefix; microsecond fields carry ``_us``.
KERNEL_FIELDS: Final[tuple[tuple[str, int, str], ...]] = (
    ("state", 0, "B"),            # tcpi_state (TCP_ESTABLISHED = 1, ...)
    ("ca_state", 1, "B"),         # tcpi_ca_state (Open/Disorder/CWR/Recovery/Loss)
    ("retransmits", 2, "B"),      # tcpi_retransmits (consecutive RTO retransmits)
    ("flags7", 7, "B"),           # bit 0: tcpi_delivery_rate_app_limited
    ("rto_us", 8, "I"),           # tcpi_rto
    ("snd_mss", 16, "I"),         # tcpi_snd_mss
    ("unacked", 24, "I"),         # tcpi_unacked (packets in flight incl. sacked/lost)
    ("lost", 32, "I"),            # tcpi_lost
    ("retrans", 36, "I"),         # tcpi_retrans (currently retransmitted, unacked)
    ("rtt_us", 68, "I"),          # tcpi_rtt (smoothed RTT, RFC 6298 SRTT)
    ("rttvar_us", 72, "I"),       # tcpi_rttvar
    ("snd_ssthresh", 76, "I"),    # tcpi_snd_ssthresh
    ("snd_cwnd", 80, "I"),        # tcpi_snd_cwnd
    ("total_retrans", 100, "I"),  # tcpi_total_retrans
    ("pacing_rate", 104, "Q"),    # tcpi_pacing_rate (B/s)
    ("max_pacing_rate", 112, "Q"),  # tcpi_max_pacing_rate (B/s; ~0 = unlimited)
    ("bytes_acked", 120, "Q"),    # tcpi_bytes_acked (RFC 4898; counts the SYN: 1 at start)
    ("bytes_received", 128, "Q"),  # tcpi_bytes_received
    ("notsent_bytes", 144, "I"),  # tcpi_notsent_bytes
    ("min_rtt_us", 148, "I"),     # tcpi_min_rtt
    ("delivery_rate", 160, "Q"),  # tcpi_delivery_rate (B/s)
    ("busy_time_us", 168, "Q"),   # tcpi_busy_time
    ("rwnd_limited_us", 176, "Q"),  # tcpi_rwnd_limited
    ("sndbuf_limited_us", 184, "Q"),  # tcpi_sndbuf_limited
    ("delivered", 192, "I"),      # tcpi_delivered (packets)
    ("bytes_sent", 200, "Q"),     # tcpi_bytes_sent (incl. retransmissions)
    ("bytes_retrans", 208, "Q"),  # tcpi_bytes_retrans
    ("snd_wnd", 228, "I"),        # tcpi_snd_wnd (peer's receive window, bytes)
)

#: The struct size these offsets assume (end of ``tcpi_snd_wnd``).
TCP_INFO_MIN_LEN: Final = 232


def _build_struct() -> struct.Struct:
    """One little-endian format that skips the unread bytes, so a sample is
    a single ``unpack_from`` call (cheap enough for 100 samples a second)."""
    fmt = "<"
    position = 0
    for _name, offset, code in sorted(KERNEL_FIELDS, key=lambda field: field[1]):
        if offset < position:
            raise AssertionError(f"overlapping tcp_info field at offset {offset}")
        fmt += "x" * (offset - position) + code
        position = offset + struct.calcsize("<" + code)
    return struct.Struct(fmt)


_KERNEL_STRUCT: Final = _build_struct()
KERNEL_FIELD_NAMES: Final = tuple(name for name, _offset, _code in KERNEL_FIELDS)


def read_tcp_info_raw(sock: socket.socket) -> bytes:
    """The kernel's bytes, padded with zeros to :data:`TCP_INFO_MIN_LEN`."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, TCP_INFO_REQUEST_LEN)
    if len(raw) < TCP_INFO_MIN_LEN:
        raw = raw + bytes(TCP_INFO_MIN_LEN - len(raw))
    return raw


def unpack_tcp_info(raw: bytes) -> tuple[int, ...]:
    """The :data:`KERNEL_FIELDS` values, in that order, from raw tcp_info bytes."""
    return _KERNEL_STRUCT.unpack_from(raw)


def read_tcp_info(sock: socket.socket) -> dict[str, int]:
    """TCP_INFO of ``sock`` as a dict keyed by :data:`KERNEL_FIELD_NAMES`
    (plus ``app_limited``, decoded from the bitfield byte)."""
    values = dict(zip(KERNEL_FIELD_NAMES, unpack_tcp_info(read_tcp_info_raw(sock)), strict=True))
    values["app_limited"] = values["flags7"] & 1
    return values
