"""The lab as data: namespaces, interfaces, addresses, routes and sysctls.

Computing the whole plan before touching the kernel means an impossible
topology fails before anything exists, ``--dry-run`` can print exactly what
would be made, and the builder stays a dumb executor.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from netlab import paths
from netlab.errors import NetlabError
from netlab.scenario.model import Direction, Scenario
from shaping.spec import LinkShape, QueueLimit

IFNAMSIZ = 15  # Linux interface names hold 15 characters plus NUL
LINK_PREFIX = 30  # one /30 per point-to-point link: two usable addresses


@dataclass(frozen=True)
class Interface:
    """One end of a link, inside a host's namespace."""

    host: str
    name: str
    address: ipaddress.IPv4Interface
    link: str
    peer_host: str
    peer_address: ipaddress.IPv4Address
    egress: Direction  # what this end's egress is asked to do


@dataclass(frozen=True)
class Route:
    host: str
    destination: ipaddress.IPv4Network  # 0.0.0.0/0 for a default route
    via: ipaddress.IPv4Address
    device: str


@dataclass
class HostPlan:
    name: str
    namespace: str
    interfaces: list[Interface] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> ipaddress.IPv4Address:
        """The address flows and checks use to reach this host."""
        return self.interfaces[0].address.ip


@dataclass
class LabPlan:
    lab: str
    subnet: ipaddress.IPv4Network
    hosts: dict[str, HostPlan]
    links: dict[str, tuple[Interface, Interface]]  # link name -> (a end, b end)

    def interfaces(self) -> list[Interface]:
        return [i for h in self.hosts.values() for i in h.interfaces]

    def describe(self) -> list[str]:
        """Every object the plan makes, in order, as equivalent ``ip`` commands."""
        lines = [f"ip netns add {host.namespace}" for host in self.hosts.values()]
        for end_a, end_b in self.links.values():
            lines.append(
                f"ip -n {self.hosts[end_a.host].namespace} link add {end_a.name} type veth "
                f"peer name {end_b.name} netns {self.hosts[end_b.host].namespace}"
            )
        for host in self.hosts.values():
            ns = host.namespace
            lines.append(f"ip -n {ns} link set lo up")
            for iface in host.interfaces:
                lines.append(f"ip -n {ns} addr add {iface.address} dev {iface.name}")
                lines.append(f"ip -n {ns} link set {iface.name} up")
            for key, value in host.sysctls.items():
                lines.append(f"ip netns exec {ns} sysctl -q -w {key}={value}")
            for route in host.routes:
                lines.append(f"ip -n {ns} route add {route.destination} via {route.via} "
                             f"dev {route.device}")
        return lines


NAMESPACE_SEPARATOR = "."  # never in a lab or host name: no two (lab, host) pairs share one


def namespace_name(lab: str, host: str) -> str:
    """``nl-<lab>.<host>``: lab ``x-a`` host ``b`` and lab ``x`` host ``a-b``
    get ``nl-x-a.b`` and ``nl-x.a-b``; capability-probe namespaces
    (``nl-probe-<pid>-<hex>``) never contain the separator."""
    return f"{paths.NAMESPACE_PREFIX}{lab}{NAMESPACE_SEPARATOR}{host}"


def _interface_names(scenario: Scenario) -> dict[tuple[str, str], str]:
    """Name each link end after its peer (``to-bob``) where that is unique
    within the host, else ``ethN``: readable in ``netlab exec ... ip addr``."""
    names: dict[tuple[str, str], str] = {}
    for host in scenario.hosts:
        ends = [(link.name, link.b if link.a == host.name else link.a)
                for link in scenario.links if host.name in (link.a, link.b)]
        peers = [peer for _, peer in ends]
        for index, (link_name, peer) in enumerate(ends):
            candidate = f"to-{peer}"
            if peers.count(peer) > 1 or len(candidate) > IFNAMSIZ:
                candidate = f"eth{index}"
            names[(host.name, link_name)] = candidate
    return names


def _next_hops(scenario: Scenario) -> dict[str, dict[str, tuple[str, str, int]]]:
    """Breadth-first shortest paths: for host h and destination host d, the
    (link, neighbour, hops) through which h forwards traffic towards d."""
    adjacency: dict[str, list[tuple[str, str]]] = {h.name: [] for h in scenario.hosts}
    for link in scenario.links:
        adjacency[link.a].append((link.name, link.b))
        adjacency[link.b].append((link.name, link.a))
    table: dict[str, dict[str, tuple[str, str, int]]] = {}
    for source in adjacency:
        first_hop: dict[str, tuple[str, str, int]] = {}
        queue: deque[str] = deque()
        for link_name, neighbour in adjacency[source]:
            if neighbour not in first_hop and neighbour != source:
                first_hop[neighbour] = (link_name, neighbour, 1)
                queue.append(neighbour)
        while queue:
            node = queue.popleft()
            for _, neighbour in adjacency[node]:
                if neighbour != source and neighbour not in first_hop:
                    link_name, hop, distance = first_hop[node]
                    first_hop[neighbour] = (link_name, hop, distance + 1)
                    queue.append(neighbour)
        table[source] = first_hop
    return table


def plan_lab(scenario: Scenario, subnet: ipaddress.IPv4Network) -> LabPlan:
    """Lay out addresses (/30 per link, in link order) and static routes."""
    link_nets = subnet.subnets(new_prefix=LINK_PREFIX)
    if len(scenario.links) > 2 ** (LINK_PREFIX - subnet.prefixlen):
        raise NetlabError(
            f"subnet {subnet} has room for {2 ** (LINK_PREFIX - subnet.prefixlen)} links, "
            f"the scenario has {len(scenario.links)}",
            where=f"{scenario.source or scenario.name}: subnet",
            fix="give a larger subnet (e.g. a /16) or leave 'subnet' out to let netlab choose",
        )
    names = _interface_names(scenario)
    hosts = {
        h.name: HostPlan(h.name, namespace_name(scenario.name, h.name), sysctls=dict(h.sysctls))
        for h in scenario.hosts
    }
    link_subnet: dict[str, ipaddress.IPv4Network] = {}
    links: dict[str, tuple[Interface, Interface]] = {}
    for link in scenario.links:
        net = next(link_nets)
        link_subnet[link.name] = net
        addr_a, addr_b = list(net.hosts())[:2]
        end_a = Interface(
            link.a, names[(link.a, link.name)], ipaddress.IPv4Interface(f"{addr_a}/{LINK_PREFIX}"),
            link.name, link.b, addr_b, link.up)
        end_b = Interface(
            link.b, names[(link.b, link.name)], ipaddress.IPv4Interface(f"{addr_b}/{LINK_PREFIX}"),
            link.name, link.a, addr_a, link.down)
        hosts[link.a].interfaces.append(end_a)
        hosts[link.b].interfaces.append(end_b)
        links[link.name] = (end_a, end_b)

    hops = _next_hops(scenario)
    for link in scenario.links:
        # a destination link is reached through the hop towards its nearer end
        for host in hosts.values():
            if host.name in (link.a, link.b):
                continue
            options = [hops[host.name][end] for end in (link.a, link.b) if end in hops[host.name]]
            if not options:
                continue  # unreachable: the validator reports flows that need it
            via_link, _, _ = min(options, key=lambda hop: hop[2])
            own = next(i for i in host.interfaces if i.link == via_link)
            host.routes.append(Route(host.name, link_subnet[link.name], own.peer_address, own.name))
    for host in hosts.values():
        gateways = {(r.via, r.device) for r in host.routes}
        if len(gateways) == 1 and len(host.interfaces) == 1:
            via, device = gateways.pop()
            host.routes = [Route(host.name, ipaddress.IPv4Network("0.0.0.0/0"), via, device)]
        if len(host.interfaces) > 1:
            host.sysctls.setdefault("net.ipv4.ip_forward", "1")
    return LabPlan(scenario.name, subnet, hosts, links)


def _shape_to_json(direction: Direction) -> dict[str, Any]:
    shape = direction.shape
    return {
        "rate_bps": shape.rate_bps, "delay_s": shape.delay_s, "jitter_s": shape.jitter_s,
        "loss": shape.loss,
        "queue_packets": shape.queue.packets if shape.queue else None,
        "queue_bytes": shape.queue.bytes if shape.queue else None,
        "trace": direction.trace,
        "trace_loop": direction.trace_loop,
    }


def _shape_from_json(data: dict[str, Any]) -> Direction:
    queue = None
    if data.get("queue_packets") is not None or data.get("queue_bytes") is not None:
        queue = QueueLimit(packets=data.get("queue_packets"), bytes=data.get("queue_bytes"))
    return Direction(
        LinkShape(rate_bps=data.get("rate_bps"), delay_s=data.get("delay_s", 0.0),
                  jitter_s=data.get("jitter_s", 0.0), loss=data.get("loss", 0.0), queue=queue),
        trace=data.get("trace"),
        trace_loop=data.get("trace_loop"),
    )


def plan_to_json(plan: LabPlan) -> dict[str, Any]:
    """The plan as JSON for the state file, so later commands (check, down,
    status) see the lab exactly as it was built."""
    return {
        "lab": plan.lab,
        "subnet": str(plan.subnet),
        "hosts": {
            h.name: {
                "namespace": h.namespace,
                "sysctls": h.sysctls,
                "interfaces": [
                    {"name": i.name, "address": str(i.address), "link": i.link,
                     "peer_host": i.peer_host, "peer_address": str(i.peer_address),
                     "egress": _shape_to_json(i.egress)}
                    for i in h.interfaces
                ],
                "routes": [{"destination": str(r.destination), "via": str(r.via),
                            "device": r.device} for r in h.routes],
            }
            for h in plan.hosts.values()
        },
        "links": {name: [a.host, b.host] for name, (a, b) in plan.links.items()},
    }


def plan_from_json(data: dict[str, Any]) -> LabPlan:
    hosts: dict[str, HostPlan] = {}
    for name, h in data["hosts"].items():
        host = HostPlan(name, h["namespace"], sysctls=dict(h.get("sysctls", {})))
        for i in h["interfaces"]:
            host.interfaces.append(Interface(
                name, i["name"], ipaddress.IPv4Interface(i["address"]), i["link"], i["peer_host"],
                ipaddress.IPv4Address(i["peer_address"]), _shape_from_json(i["egress"])))
        for r in h["routes"]:
            host.routes.append(Route(name, ipaddress.IPv4Network(r["destination"]),
                                     ipaddress.IPv4Address(r["via"]), r["device"]))
        hosts[name] = host
    links: dict[str, tuple[Interface, Interface]] = {}
    for link_name, (host_a, host_b) in data["links"].items():
        end_a = next(i for i in hosts[host_a].interfaces if i.link == link_name)
        end_b = next(i for i in hosts[host_b].interfaces
                     if i.link == link_name and i is not end_a)
        links[link_name] = (end_a, end_b)
    return LabPlan(data["lab"], ipaddress.IPv4Network(data["subnet"]), hosts, links)


def egress_path(plan: LabPlan, src: str, dst: ipaddress.IPv4Address) -> list[Interface]:
    """The egress interfaces a packet from ``src`` to ``dst`` crosses, by the
    plan's routes (longest prefix first), so checks can predict delays."""
    path: list[Interface] = []
    host = plan.hosts[src]
    for _ in range(len(plan.hosts) + 1):
        if any(i.address.ip == dst for i in host.interfaces):
            return path
        direct = [i for i in host.interfaces if dst in i.address.network]
        if direct:
            path.append(direct[0])
            return path
        candidates = [r for r in host.routes if dst in r.destination]
        if not candidates:
            raise ValueError(f"{src} has no route to {dst}")
        route = max(candidates, key=lambda r: r.destination.prefixlen)
        out = next(i for i in host.interfaces if i.name == route.device)
        path.append(out)
        host = plan.hosts[out.peer_host]
    raise ValueError(f"routing loop from {src} to {dst}")
