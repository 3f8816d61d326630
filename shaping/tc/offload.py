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

These are per-device settings of the *sending* interface: for multi-hop
paths, apply them to every veth that carries shaped traffic.
"""

from __future__ import annotations

from typing import Any

from shaping.tc.burst import FRAME_BYTES
from shaping.tc.ops import LinkOp

SHAPED_GSO_MAX_SIZE = FRAME_BYTES
SHAPED_GSO_MAX_SEGS = 1


def shaped_offloads(ifname: str) -> LinkOp:
    return LinkOp(ifname, SHAPED_GSO_MAX_SIZE, SHAPED_GSO_MAX_SEGS)


def read_offloads(ipr: Any, ifname: str) -> LinkOp:
    """The interface's current GSO limits (to restore them later)."""
    index = ipr.link_lookup(ifname=ifname)[0]
    link = ipr.get_links(index)[0]
    return LinkOp(ifname, int(link.get("IFLA_GSO_MAX_SIZE")), int(link.get("IFLA_GSO_MAX_SEGS")))


def set_offloads(ipr: Any, op: LinkOp) -> None:
    index = ipr.link_lookup(ifname=op.ifname)[0]
    ipr.link("set", index=index, gso_max_size=op.gso_max_size, gso_max_segs=op.gso_max_segs)


def limit_offloads(ipr: Any, ifname: str) -> LinkOp:
    """Make ``ifname`` emit frame-sized packets; returns the previous settings.

    ``ipr`` is an IPRoute opened in the interface's namespace.  The shapers
    call this from ``apply()``; the lab calls it for unshaped veths on a
    shaped multi-hop path.
    """
    previous = read_offloads(ipr, ifname)
    set_offloads(ipr, shaped_offloads(ifname))
    return previous
