"""Where a link direction's packets enter the shaped link and where they leave it.

User backend: the link process reads packets from the sending end's TUN
device and writes them into the receiving end's TUN device after shaping,
so one capture on each TUN device records both the entry (what its
namespace sends) and the exit (what it receives) of the link.

Kernel backend: the shaping is the qdisc on the sending veth's egress, and
a packet socket sees an outgoing packet only after the qdisc released it
(``dev_queue_xmit_nit`` runs in ``dev_hard_start_xmit``, net/core/dev.c).
The entry is therefore taken before the qdisc: a clsact egress filter
mirrors every packet to a capture-only veth (see ``mirror.py``); the exit
is what the receiving veth receives.

Captures are not filtered by direction: libpcap's ``inbound``/``outbound``
left dumpcap blind for about 250 ms after it said it was capturing.  A
packet's direction on a link follows from its destination instead (routes
are static): ``up`` carries the packets for the addresses behind the b end.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from netlab.errors import NetlabError
from netlab.lab.plan import LabPlan, egress_path

LinkDirection = Literal["up", "down"]  # up: a -> b, down: b -> a, as in the scenario
Role = Literal["entry", "exit"]
Backend = Literal["kernel", "user"]
DIRECTIONS: tuple[LinkDirection, ...] = ("up", "down")
CAPTURE_FILTER = "ip"


@dataclass(frozen=True)
class CapturePoint:
    """One capture process: an interface in a namespace, and what it records."""

    link: str
    namespace: str
    interface: str  # what the capture process listens on
    serves: tuple[tuple[LinkDirection, Role], ...]  # e.g. (("up", "entry"), ("down", "exit"))
    mirror_of: str | None = None  # kernel entry: the shaped interface mirrored here

    @property
    def stem(self) -> str:
        """File name stem of this point's capture files."""
        return f"{self.link}.{self.namespace}.{self.interface}"


def mirror_name(plan: LabPlan, link: str, direction: LinkDirection) -> str:
    """A short, lab-unique name for a kernel entry mirror (IFNAMSIZ is 15)."""
    index = list(plan.links).index(link)
    return f"nlcap{index}{direction[0]}"


def capture_points(plan: LabPlan, backend: Backend, link: str,
                   directions: tuple[LinkDirection, ...] = DIRECTIONS) -> list[CapturePoint]:
    """The capture processes that record the entry and exit of each asked
    direction of ``link``."""
    if link not in plan.links:
        raise NetlabError(f"link '{link}' is not in lab '{plan.lab}'",
                          where="capture", fix=f"use one of: {', '.join(plan.links)}")
    end_a, end_b = plan.links[link]
    ends = {"up": (end_a, end_b), "down": (end_b, end_a)}
    serves: dict[tuple[str, str], list[tuple[LinkDirection, Role]]] = {}
    points: list[CapturePoint] = []
    for direction in directions:
        src, dst = ends[direction]
        src_ns = plan.hosts[src.host].namespace
        if backend == "user":
            serves.setdefault((src_ns, src.name), []).append((direction, "entry"))
        else:
            points.append(CapturePoint(link, src_ns, mirror_name(plan, link, direction),
                                       ((direction, "entry"),), mirror_of=src.name))
        serves.setdefault((plan.hosts[dst.host].namespace, dst.name), []).append(
            (direction, "exit"))
    points += [CapturePoint(link, ns, name, tuple(roles)) for (ns, name), roles in serves.items()]
    return points


def destinations(plan: LabPlan, link: str) -> dict[LinkDirection, list[str]]:
    """The addresses each direction of ``link`` carries packets to."""
    end_a, end_b = plan.links[link]
    addresses = [i.address.ip for h in plan.hosts.values() for i in h.interfaces]
    out: dict[LinkDirection, list[str]] = {"up": [], "down": []}
    for direction, (src, _) in (("up", (end_a, end_b)), ("down", (end_b, end_a))):
        for address in addresses:
            try:
                path = egress_path(plan, src.host, ipaddress.IPv4Address(address))
            except ValueError:
                continue
            if path and path[0] == src:
                out[direction].append(str(address))  # type: ignore[index]
    return out
