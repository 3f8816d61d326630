"""A lab plan as VMs: one VM per host, one NIC per link end, addressed as in
the namespace lab, so both runs of one scenario use the same addresses, routes
and flow command lines.

The Vagrantfile reads this as JSON (``NETLAB_VAGRANT_TOPOLOGY``).  Data-link
NICs get fixed MAC addresses: the guest side finds each NIC by MAC, which
holds on every provider, whatever the guest names its interfaces.

Folding (``fold=True``): a host where no flow starts or ends and no agent
runs (a router) lives in a network namespace inside a neighbour's VM, as it
would in a namespace lab; the link between them is a veth pair inside that
VM.  Under QEMU TCG every VM is one more emulated vCPU on the host's cores,
so the smoke scenario's three VMs on a two-core machine become two.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass, field
from typing import Any

from netlab.errors import NetlabError
from netlab.lab.plan import LabPlan
from netlab.scenario.model import Scenario

#: Per-VM defaults sized for a shared 2-core machine under QEMU TCG.
DEFAULT_MEMORY_MB = 768
DEFAULT_CPUS = 1
DEFAULT_MAX_VMS = 3
DEFAULT_BOX = "netlab/bookworm"
MGMT_ADDRESS = "192.168.121.0/24"
#: UDP tunnel ports: a block of 100 per lab, chosen by a hash of its name.
TUNNEL_PORT_BASE = 40000
TUNNEL_BLOCKS = 200


@dataclass(frozen=True)
class Nic:
    """One data-link NIC of a VM: a UDP tunnel end (libvirt) or an intnet (VirtualBox)."""

    link: str
    mac: str
    address: ipaddress.IPv4Interface
    local_port: int
    remote_port: int
    intnet: str


@dataclass(frozen=True)
class InnerLink:
    """A link whose two ends share one VM: a veth pair inside it, named as in the plan."""

    link: str
    vm: str
    ends: tuple[tuple[str, str, str], tuple[str, str, str]]  # (host, ifname, address) a, b


@dataclass
class VmTopology:
    lab: str
    prefix: str  # libvirt domain name prefix
    box: str
    memory_mb: int
    cpus: int
    driver: str
    project: str
    wheels: str
    management_network: str
    management_address: str = MGMT_ADDRESS
    vms: dict[str, list[Nic]] = field(default_factory=dict)
    placement: dict[str, str] = field(default_factory=dict)  # host -> the VM it lives in
    inner_links: list[InnerLink] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "prefix": self.prefix,
            "box": self.box,
            "memory_mb": self.memory_mb,
            "cpus": self.cpus,
            "driver": self.driver,
            "project": self.project,
            "wheels": self.wheels,
            "management": {"network": self.management_network,
                           "address": self.management_address},
            "vms": [{"name": name, "nics": [
                {"link": n.link, "mac": n.mac, "address": str(n.address),
                 "local_port": n.local_port, "remote_port": n.remote_port,
                 "intnet": n.intnet} for n in nics],
                 "hosts": [h for h, vm in self.placement.items() if vm == name]}
                for name, nics in self.vms.items()],
            "placement": dict(self.placement),
            "inner_links": [{"link": i.link, "vm": i.vm, "ends": [
                {"host": host, "ifname": ifname, "address": address}
                for host, ifname, address in i.ends]} for i in self.inner_links],
        }


def mac_for(lab: str, link_index: int, end: int) -> str:
    """A locally administered unicast MAC in QEMU's 52:54:00 range: the lab's
    hash byte, the link's index and the end (1 = a, 2 = b)."""
    return f"52:54:00:{zlib.crc32(lab.encode()) & 0xFF:02x}:{link_index & 0xFF:02x}:{end:02x}"


def tunnel_ports(lab: str, link_index: int) -> tuple[int, int]:
    base = TUNNEL_PORT_BASE + (zlib.crc32(lab.encode()) % TUNNEL_BLOCKS) * 100
    return base + 2 * link_index, base + 2 * link_index + 1


def endpoint_hosts(scenario: Scenario) -> set[str]:
    """Hosts something runs on: a flow's ends (a command flow's host) or an agent."""
    hosts = {host for flow in scenario.flows for host in (flow.src, flow.dst)}
    hosts |= {str(flow.options["host"]) for flow in scenario.flows if "host" in flow.options}
    return hosts | {agent.host for agent in scenario.agents}


def fold_routers(plan: LabPlan, endpoints: set[str]) -> dict[str, str]:
    """host -> VM: each host without endpoints joins a neighbour that has them.

    The neighbour chosen is the one its traced egress leads to (the shaped
    link then becomes a veth in one kernel, as in a namespace lab), then the
    one with fewer endpoints, then the first in the plan's order.  A router
    with no endpoint host beside it keeps a VM of its own.
    """
    placement = {host: host for host in plan.hosts}
    order = list(plan.hosts)
    for host, hp in plan.hosts.items():
        if host in endpoints:
            continue
        candidates = [i for i in hp.interfaces if i.peer_host in endpoints]
        if not candidates:
            continue
        best = min(candidates, key=lambda i: (
            i.egress.trace is None, sum(1 for h in endpoints if h == i.peer_host),
            order.index(i.peer_host)))
        placement[host] = best.peer_host
    return placement


def build_topology(plan: LabPlan, *, source: str, box: str = DEFAULT_BOX,
                   memory_mb: int = DEFAULT_MEMORY_MB, cpus: int = DEFAULT_CPUS,
                   driver: str = "qemu", project: str, wheels: str,
                   max_vms: int = DEFAULT_MAX_VMS,
                   placement: dict[str, str] | None = None) -> VmTopology:
    """A VM per host of ``plan``, or per VM of ``placement`` (host -> VM, from
    :func:`fold_routers`); refuses more than ``max_vms`` VMs."""
    placement = placement or {host: host for host in plan.hosts}
    vm_names = list(dict.fromkeys(placement[host] for host in plan.hosts))
    if len(vm_names) > max_vms:
        raise NetlabError(
            f"the scenario needs {len(vm_names)} VMs ({len(plan.hosts)} hosts), more than the "
            f"limit of {max_vms}", where=f"{source}: hosts",
            fix="use fewer hosts, or raise the limit with --max-vms if the machine has the "
                "memory (each VM takes about its --memory plus 0.3-0.6 GB under QEMU TCG)")
    if len(plan.links) > 50:
        raise NetlabError(f"the scenario has {len(plan.links)} links; VM runs take at most 50",
                          where=f"{source}: links", fix="split the topology")
    topology = VmTopology(
        lab=plan.lab, prefix=f"nl-{plan.lab}-", box=box, memory_mb=memory_mb, cpus=cpus,
        driver=driver, project=project, wheels=wheels,
        management_network=f"nl-{plan.lab}-mgmt"[:48], placement=dict(placement))
    for name in vm_names:
        topology.vms[name] = []
    for index, (link, (end_a, end_b)) in enumerate(plan.links.items()):
        vm_a, vm_b = placement[end_a.host], placement[end_b.host]
        if vm_a == vm_b:
            topology.inner_links.append(InnerLink(link, vm_a, (
                (end_a.host, end_a.name, str(end_a.address)),
                (end_b.host, end_b.name, str(end_b.address)))))
            continue
        port_a, port_b = tunnel_ports(plan.lab, index)
        intnet = f"nl-{plan.lab}-{link}"
        topology.vms[vm_a].append(
            Nic(link, mac_for(plan.lab, index, 1), end_a.address, port_a, port_b, intnet))
        topology.vms[vm_b].append(
            Nic(link, mac_for(plan.lab, index, 2), end_b.address, port_b, port_a, intnet))
    return topology


def guest_routes(plan: LabPlan, host: str, *, own_vm: bool = True) -> list[tuple[str, str]]:
    """(destination, via) routes for one host.  On the VM's own host a plan's
    default route becomes a route to the lab's subnet: there the default route
    belongs to the management NIC, which must keep reaching the machine
    driving the VMs.  A folded host's namespace has no management NIC."""
    routes = []
    for route in plan.hosts[host].routes:
        destination = route.destination
        if destination.prefixlen == 0 and own_vm:
            destination = plan.subnet
        routes.append((str(destination), str(route.via)))
    return routes
