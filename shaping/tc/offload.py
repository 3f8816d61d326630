"""Interface offload settings that shaping needs.

With the default offloads a TCP sender hands the qdisc GSO super-packets of
up to 64 kB.  An htb leaf bounded in bytes below that size drops such a
packet whole, every time: TCP BBR at 1-5 Mbit/s, whose start-up pacing rate
(measured over a microsecond veth RTT) asks for the largest GSO size,
collapsed to 2-7 % of the rate.  Even where nothing is dropped, a 64 kB
packet leaves a 1 Mbit/s link as one 0.5 s burst.  A real NIC puts frames on
the wire, so the shaped interface gets ``gso_max_segs 1`` (TCP then builds
one-segment packets; tcp_tso_segs() caps segments by it) and ``gso_max_size``
of one frame.  Mininet turns offloads off for the same reason.

At high rates one-frame packets make the sender CPU-bound (1 Gbit/s reached
0.37-0.41 of the rate on 2 vCPUs, 0.956 with 4+ segments), so from 200 Mbit/s
up a packet may carry a few segments, never more than 1/8 of the queue (so
the byte bound can never drop one whole, the BBR failure above) nor half
the bucket.  TCP sockets cache the limit when they connect, so the choice is
made once, at apply(): apply a replayed trace at its typical rate.

These are per-device settings of the *sending* interface: for multi-hop
paths, apply them to every veth that carries shaped traffic.
"""

from __future__ import annotations

from typing import Any

from shaping.tc.burst import FRAME_BYTES
from shaping.tc.ops import LinkOp

#: Below this rate every packet is one frame.
MULTI_SEGMENT_RATE_BPS = 200_000_000
MAX_SEGMENTS = 16
GSO_MAX_SIZE_LIMIT = 65536


def gso_segments(rate_bps: int, burst: int, queue_bytes: int) -> int:
    """Segments per GSO packet allowed at this rate, bucket and (byte) queue."""
    if rate_bps < MULTI_SEGMENT_RATE_BPS:
        return 1
    fit = min(queue_bytes // 8, burst // 2) // FRAME_BYTES
    return max(1, min(MAX_SEGMENTS, fit))


def shaped_offloads(ifname: str, segments: int = 1) -> LinkOp:
    size = FRAME_BYTES if segments == 1 else min(GSO_MAX_SIZE_LIMIT, segments * FRAME_BYTES)
    return LinkOp(ifname, size, segments)


def read_offloads(ipr: Any, ifname: str) -> LinkOp:
    """The interface's current GSO limits (to restore them later)."""
    index = ipr.link_lookup(ifname=ifname)[0]
    link = ipr.get_links(index)[0]
    return LinkOp(ifname, int(link.get("IFLA_GSO_MAX_SIZE")), int(link.get("IFLA_GSO_MAX_SEGS")))


def set_offloads(ipr: Any, op: LinkOp) -> None:
    index = ipr.link_lookup(ifname=op.ifname)[0]
    ipr.link("set", index=index, gso_max_size=op.gso_max_size, gso_max_segs=op.gso_max_segs)


def limit_offloads(ipr: Any, ifname: str, segments: int = 1) -> LinkOp:
    """Make ``ifname`` emit packets of ``segments`` frames; returns the previous settings.

    ``ipr`` is an IPRoute opened in the interface's namespace.  The shapers
    call this from ``apply()``; the lab calls it for unshaped veths on a
    shaped multi-hop path.
    """
    previous = read_offloads(ipr, ifname)
    set_offloads(ipr, shaped_offloads(ifname, segments))
    return previous
