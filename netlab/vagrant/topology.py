"""A lab plan as VMs: one VM per host, one NIC per link end, addressed as in
the namespace lab, so both runs of one scenario use the same addresses, routes
and flow command lines.

The Vagrantfile reads this as JSON (``NETLAB_VAGRANT_TOPOLOGY``).  Data-link
NICs get fixed MAC addresses: the guest side finds each NIC by MAC, which
holds on every provider, whatever the guest names its interfaces.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass, field
from typing import Any

from netlab.errors import NetlabError
from netlab.lab.plan import LabPlan

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
                 "intnet": n.intnet} for n in nics]} for name, nics in self.vms.items()],
        }


def mac_for(lab: str, link_index: int, end: int) -> str:
    """A locally administered unicast MAC in QEMU's 52:54:00 range: the lab's
    hash byte, the link's index and the end (1 = a, 2 = b)."""
    return f"52:54:00:{zlib.crc32(lab.encode()) & 0xFF:02x}:{link_index & 0xFF:02x}:{end:02x}"


def tunnel_ports(lab: str, link_index: int) -> tuple[int, int]:
    base = TUNNEL_PORT_BASE + (zlib.crc32(lab.encode()) % TUNNEL_BLOCKS) * 100
    return base + 2 * link_index, base + 2 * link_index + 1


def build_topology(plan: LabPlan, *, source: str, box: str = DEFAULT_BOX,
                   memory_mb: int = DEFAULT_MEMORY_MB, cpus: int = DEFAULT_CPUS,
                   driver: str = "qemu", project: str, wheels: str,
                   max_vms: int = DEFAULT_MAX_VMS) -> VmTopology:
    """One VM per host of ``plan``; refuses more than ``max_vms`` VMs."""
    if len(plan.hosts) > max_vms:
        raise NetlabError(
            f"the scenario has {len(plan.hosts)} hosts, more VMs than the limit of {max_vms}",
            where=f"{source}: hosts",
            fix="use fewer hosts, or raise the limit with --max-vms if the machine has the "
                "memory (each VM takes about its --memory plus 0.3-0.6 GB under QEMU TCG)")
    if len(plan.links) > 50:
        raise NetlabError(f"the scenario has {len(plan.links)} links; VM runs take at most 50",
                          where=f"{source}: links", fix="split the topology")
    topology = VmTopology(
        lab=plan.lab, prefix=f"nl-{plan.lab}-", box=box, memory_mb=memory_mb, cpus=cpus,
        driver=driver, project=project, wheels=wheels,
        management_network=f"nl-{plan.lab}-mgmt"[:48])
    for name in plan.hosts:
        topology.vms[name] = []
    for index, (link, (end_a, end_b)) in enumerate(plan.links.items()):
        port_a, port_b = tunnel_ports(plan.lab, index)
        intnet = f"nl-{plan.lab}-{link}"
        topology.vms[end_a.host].append(
            Nic(link, mac_for(plan.lab, index, 1), end_a.address, port_a, port_b, intnet))
        topology.vms[end_b.host].append(
            Nic(link, mac_for(plan.lab, index, 2), end_b.address, port_b, port_a, intnet))
    return topology


def guest_routes(plan: LabPlan, host: str) -> list[tuple[str, str]]:
    """(destination, via) routes for one VM.  A plan's default route becomes a
    route to the lab's subnet: in a VM the default route belongs to the
    management NIC, which must keep reaching the machine driving the VMs."""
    routes = []
    for route in plan.hosts[host].routes:
        destination = route.destination
        if destination.prefixlen == 0:
            destination = plan.subnet
        routes.append((str(destination), str(route.via)))
    return routes
