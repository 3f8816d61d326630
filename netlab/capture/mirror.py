"""Kernel backend: a copy of every packet as it enters a veth's qdisc.

A clsact egress filter runs in ``__dev_queue_xmit`` before the root qdisc
enqueues (net/core/dev.c, ``sch_handle_egress``), so a ``mirred egress
mirror`` action there copies each packet at the instant it enters the
shaped link.  The copy goes to a veth pair used only for capture: its
packet tap timestamps the copy, and its peer drops it (no address, so
nothing is routed or answered).  A dummy device would do the same but its
module may be missing; veth is always there in a lab.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from labcore.netlink import IPRoute, NetlinkError
from netlab.capture.points import CapturePoint
from netlab.lab import netns
from netlab.lab.state import StateJournal

# TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS), include/uapi/linux/pkt_sched.h
CLSACT_EGRESS = 0xFFFFFFF3
ETH_P_ALL = 0x0003
MIRROR_PRIO = 1


def _peer(name: str) -> str:
    return f"{name}p"


def _disable_ipv6(namespace: str, names: list[str]) -> None:
    """No router solicitations or DAD from the capture veths."""
    with netns.inside(namespace):
        for name in names:
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1\n")


def add_mirror(point: CapturePoint, journal: StateJournal) -> None:
    """Create the capture veth and the filter copying ``point.mirror_of`` to it."""
    assert point.mirror_of is not None
    journal.record("link", point.interface, point.namespace)
    ipr: IPRoute = netns.call_inside(point.namespace, IPRoute)
    try:
        ipr.link("add", ifname=point.interface, kind="veth",
                 peer={"ifname": _peer(point.interface)})
        _disable_ipv6(point.namespace, [point.interface, _peer(point.interface)])
        mirror = ipr.link_lookup(ifname=point.interface)[0]
        for name in (point.interface, _peer(point.interface)):
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        shaped = ipr.link_lookup(ifname=point.mirror_of)[0]
        with contextlib.suppress(NetlinkError):  # another direction's mirror made it
            ipr.tc("add", "clsact", shaped)
        ipr.tc("add-filter", "u32", shaped, parent=CLSACT_EGRESS, protocol=ETH_P_ALL,
               prio=MIRROR_PRIO, target=0, keys=["0x0/0x0+0"],
               action={"kind": "mirred", "direction": "egress", "action": "mirror",
                       "ifindex": mirror})
    finally:
        ipr.close()


def remove_mirror(point: CapturePoint) -> None:
    """Remove the filter, the clsact qdisc and the capture veth; what is
    already gone (the lab was taken down first) is skipped."""
    assert point.mirror_of is not None
    if not netns.exists(point.namespace):
        return
    try:
        ipr: IPRoute = netns.call_inside(point.namespace, IPRoute)
    except OSError:
        return
    try:
        shaped = ipr.link_lookup(ifname=point.mirror_of)
        if shaped:
            with contextlib.suppress(NetlinkError):
                ipr.tc("del", "clsact", shaped[0])
        found = ipr.link_lookup(ifname=point.interface)
        if found:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=found[0])
    finally:
        ipr.close()

