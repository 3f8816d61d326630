"""Netlink wire encoding shared by the qdisc option classes.

The messages are packed here with ``struct`` rather than through pyroute2's
message classes: pyroute2 spends about 220 us encoding one htb class change
(it recomputes two 256-entry rate tables the kernel no longer needs), while
the kernel applies it in a few microseconds.  Layouts follow
``include/uapi/linux/{rtnetlink,pkt_sched,netlink}.h``.
"""

from __future__ import annotations

import struct

# include/net/pkt_sched.h: PSCHED_SHIFT 6, one psched tick is 64 ns.
NS_PER_TICK = 64
U32_MAX = 0xFFFFFFFF

# struct tc_ratespec.linklayer: with ETHERNET set the kernel needs no rate
# table (qdisc_get_rtab is only consulted for TC_LINKLAYER_UNAWARE).
TC_LINKLAYER_ETHERNET = 1

TC_H_ROOT = 0xFFFFFFFF

TCA_KIND = 1
TCA_OPTIONS = 2


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (struct nlattr + payload, padded to 4 bytes)."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def u32_attr(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def u64_attr(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=Q", value))


def seconds_to_ticks(seconds: float) -> int:
    """psched ticks for a duration, clamped to the u32 fields that carry them."""
    return min(U32_MAX, round(seconds * 1e9 / NS_PER_TICK))


def ratespec(rate_bytes_per_s: int) -> bytes:
    """struct tc_ratespec; rates above u32 go in a separate *_RATE64 attribute."""
    return struct.pack(
        "=BBHhHI", 0, TC_LINKLAYER_ETHERNET, 0, 0, 0, min(U32_MAX, rate_bytes_per_s)
    )


def handle_text(handle: int) -> str:
    """tc's ``major:minor`` notation (hex, minor omitted when 0)."""
    if handle == TC_H_ROOT:
        return "root"
    major, minor = handle >> 16, handle & 0xFFFF
    return f"{major:x}:{minor:x}" if minor else f"{major:x}:"


def make_handle(major: int, minor: int = 0) -> int:
    return (major << 16) | minor
