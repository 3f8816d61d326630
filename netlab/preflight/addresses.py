"""Keep a lab's private range clear of the machine's own networks.

A lab whose range overlaps a route the machine already has (the LAN, a VPN,
Docker's 172.17/16) would shadow or be shadowed by it as soon as anything
bridges the lab to the host, and makes captures ambiguous.  The machine's
IPv4 routes (all tables) and addresses are read over netlink.

Automatic choice: the pools 10.128.0.0/9 then 172.16.0.0/12 (RFC 1918) are
carved into /16s (or the prefix asked); the start is a hash of the lab name,
so a lab gets the same range on every run on the same machine, and the
search walks on from there past every block that overlaps a route or
address of the machine or a range recorded in another lab's state file.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_network

from labcore.netlink import IPRoute
from netlab import paths
from netlab.errors import NetlabError

SUBNET_POOLS: tuple[IPv4Network, ...] = (
    IPv4Network("10.128.0.0/9"),
    IPv4Network("172.16.0.0/12"),
)

_RT_TABLE_NAMES = {253: "default", 254: "main", 255: "local"}
_RTN_LOCAL = 2
_RTN_BROADCAST = 3


@dataclass(frozen=True)
class MachineNetwork:
    """A network the machine already uses, with a phrase saying where from."""

    network: IPv4Network
    description: str


def machine_networks(netns: str | None = None) -> list[MachineNetwork]:
    """IPv4 routes and addresses of the root namespace (or ``netns``).

    Default routes are left out (they overlap everything by definition), as
    are the local table's per-address host and broadcast routes, which the
    address list already covers.
    """
    found: list[MachineNetwork] = []
    kwargs: dict[str, object] = {} if netns is None else {"netns": netns, "flags": 0}
    with IPRoute(**kwargs) as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.link("dump")}
        own_addresses: set[str] = set()
        for addr in ipr.addr("dump", family=socket.AF_INET):
            address = addr.get("address")
            if address is None:
                continue
            own_addresses.add(address)
            network = ip_network(f"{address}/{addr['prefixlen']}", strict=False)
            assert isinstance(network, IPv4Network)
            device = names.get(addr["index"], f"#{addr['index']}")
            described = f"address {address}/{addr['prefixlen']} on {device}"
            found.append(MachineNetwork(network, described))
        for route in ipr.route("dump", family=socket.AF_INET):
            if route["dst_len"] == 0:
                continue
            dst = route.get("dst")
            table = route.get("table", route["table"])
            if table == 255 and (
                route["type"] == _RTN_BROADCAST
                or (route["type"] == _RTN_LOCAL and route["dst_len"] == 32 and dst in own_addresses)
            ):
                continue
            network = ip_network(f"{dst}/{route['dst_len']}", strict=False)
            assert isinstance(network, IPv4Network)
            parts = [f"route {network}"]
            oif = route.get("oif")
            if oif is not None:
                parts.append(f"dev {names.get(oif, f'#{oif}')}")
            if table != 254:
                parts.append(f"table {_RT_TABLE_NAMES.get(table, str(table))}")
            found.append(MachineNetwork(network, " ".join(parts)))
    return found


def address_collisions(subnet: IPv4Network, *, netns: str | None = None) -> list[str]:
    """What in the machine's routes/addresses overlaps ``subnet`` (empty: free)."""
    return [m.description for m in machine_networks(netns) if m.network.overlaps(subnet)]


def other_lab_subnets(exclude: str | None = None) -> dict[str, IPv4Network]:
    """Ranges recorded by other labs' state files (``"subnet"`` key), by lab name.

    Read tolerantly: the state module owns that format; an unreadable file
    or a missing key just contributes nothing.
    """
    found: dict[str, IPv4Network] = {}
    try:
        lab_dirs = list(paths.run_root().iterdir())
    except OSError:
        return found
    for lab_dir in lab_dirs:
        if lab_dir.name == exclude or not lab_dir.is_dir():
            continue
        try:
            data = json.loads((lab_dir / paths.STATE_FILE).read_text())
            network = ip_network(str(data["subnet"]), strict=False)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(network, IPv4Network):
            found[lab_dir.name] = network
    return found


def _candidates(prefix: int, start_hash: int) -> Iterable[IPv4Network]:
    for pool in SUBNET_POOLS:
        if prefix < pool.prefixlen:
            continue
        count = 1 << (prefix - pool.prefixlen)
        first = start_hash % count
        size = 1 << (32 - prefix)
        base = int(pool.network_address)
        for step in range(count):
            yield IPv4Network(((base + ((first + step) % count) * size), prefix))


def choose_subnet(
    lab_index_hint: str, prefix: int = 16, *, netns: str | None = None
) -> IPv4Network:
    """A free private range for the lab named ``lab_index_hint`` (see module doc)."""
    if not 9 <= prefix <= 30:
        raise ValueError(f"prefix must be between 9 and 30, got {prefix}")
    taken = [m.network for m in machine_networks(netns)]
    taken.extend(other_lab_subnets(exclude=lab_index_hint).values())
    start = int.from_bytes(hashlib.sha256(lab_index_hint.encode()).digest()[:8], "big")
    for candidate in _candidates(prefix, start):
        if not any(candidate.overlaps(used) for used in taken):
            return candidate
    pools = ", ".join(str(p) for p in SUBNET_POOLS)
    raise NetlabError(
        f"no free /{prefix} left in {pools}: every block overlaps a route, an address "
        "or another lab",
        where=f"lab {lab_index_hint!r}",
        fix="set `subnet:` in the scenario to a free range, or `netlab down` unused labs",
    )
