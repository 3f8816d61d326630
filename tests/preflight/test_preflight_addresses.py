"""Address-range collisions and the automatic choice of a lab's range."""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv4Network, ip_interface
from pathlib import Path

import pytest

from labcore.netlink import IPRoute
from netlab.errors import NetlabError
from netlab.preflight import address_collisions, choose_subnet
from netlab.preflight.addresses import SUBNET_POOLS


def _root_routes() -> list[dict[str, object]]:
    """Oracle: iproute2's own view of the root namespace's main table."""
    out = subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True, check=True)
    routes: list[dict[str, object]] = json.loads(out.stdout)
    return [r for r in routes if r["dst"] != "default"]


def test_machine_routes_collide() -> None:
    routes = _root_routes()
    if not routes:
        pytest.skip("this machine has no non-default IPv4 route")
    for route in routes:
        dst = IPv4Network(str(route["dst"]), strict=False)
        found = address_collisions(dst)
        assert f"route {dst} dev {route['dev']}" in found, found


def test_machine_addresses_collide() -> None:
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True)
    for link in json.loads(out.stdout):
        for info in link["addr_info"]:
            iface = ip_interface(f"{info['local']}/{info['prefixlen']}")
            found = address_collisions(IPv4Network(iface.network))
            assert f"address {iface} on {link['ifname']}" in found, found


def test_documentation_range_on_eth0_collides_if_present() -> None:
    found = address_collisions(IPv4Network("192.0.2.0/24"))
    eth0 = [r for r in _root_routes() if r["dst"] == "192.0.2.0/24"]
    if not eth0:
        pytest.skip("192.0.2.0/24 is not on this machine")
    assert found == ["address 192.0.2.2/24 on eth0", "route 192.0.2.0/24 dev eth0"]


def test_default_route_does_not_count_and_a_free_range_is_free() -> None:
    chosen = choose_subnet("nltb-free-check")
    assert chosen.subnet_of(SUBNET_POOLS[0]) or chosen.subnet_of(SUBNET_POOLS[1])
    assert address_collisions(chosen) == []


@pytest.fixture
def wired_netns(own_netns: str) -> str:
    """own_netns with 10.77.1.1/24 on a veth end and 10.99.0.0/16 routed through it.

    (This kernel has no dummy link kind, so a veth pair stands in.)
    """
    with IPRoute(netns=own_netns, flags=0) as ipr:
        ipr.link("add", ifname="nltb0a", kind="veth", peer="nltb0b")
        index = ipr.link_lookup(ifname="nltb0a")[0]
        peer = ipr.link_lookup(ifname="nltb0b")[0]
        ipr.link("set", index=index, state="up")
        ipr.link("set", index=peer, state="up")
        ipr.addr("add", index=index, address="10.77.1.1", prefixlen=24)
        ipr.route("add", dst="10.99.0.0/16", gateway="10.77.1.254")
    return own_netns


def test_collisions_in_a_namespace_we_control(wired_netns: str) -> None:
    # The local table's host and broadcast routes for the address are not repeated.
    assert address_collisions(IPv4Network("10.77.0.0/16"), netns=wired_netns) == [
        "address 10.77.1.1/24 on nltb0a",
        "route 10.77.1.0/24 dev nltb0a",
    ]
    assert address_collisions(IPv4Network("10.99.5.0/24"), netns=wired_netns) == [
        "route 10.99.0.0/16 dev nltb0a"
    ]
    assert address_collisions(IPv4Network("10.200.0.0/16"), netns=wired_netns) == []


def test_choice_is_stable_and_skips_a_taken_block(own_netns: str, run_root: Path) -> None:
    first = choose_subnet("alpha", netns=own_netns)
    assert first == choose_subnet("alpha", netns=own_netns)
    assert first.prefixlen == 16
    with IPRoute(netns=own_netns, flags=0) as ipr:
        ipr.link("add", ifname="nltb1a", kind="veth", peer="nltb1b")
        index = ipr.link_lookup(ifname="nltb1a")[0]
        ipr.addr("add", index=index, address=str(first.network_address + 1), prefixlen=24)
    second = choose_subnet("alpha", netns=own_netns)
    assert second != first
    assert address_collisions(second, netns=own_netns) == []
    assert address_collisions(first, netns=own_netns) != []


def test_choice_skips_ranges_of_other_labs(own_netns: str, run_root: Path) -> None:
    first = choose_subnet("alpha", netns=own_netns)
    (run_root / "beta").mkdir()
    (run_root / "beta" / "state.json").write_text(json.dumps({"subnet": str(first)}))
    assert choose_subnet("alpha", netns=own_netns) != first
    # A lab's own (possibly stale) record does not push it off its range.
    (run_root / "alpha").mkdir()
    (run_root / "alpha" / "state.json").write_text(json.dumps({"subnet": str(first)}))
    (run_root / "beta" / "state.json").write_text("{not json")
    assert choose_subnet("alpha", netns=own_netns) == first


def test_other_prefixes_and_bad_prefix(own_netns: str) -> None:
    chosen = choose_subnet("gamma", prefix=24, netns=own_netns)
    assert chosen.prefixlen == 24 and chosen.is_private
    with pytest.raises(ValueError):
        choose_subnet("gamma", prefix=8)


def test_exhausted_pools_say_what_to_do(own_netns: str) -> None:
    with IPRoute(netns=own_netns, flags=0) as ipr:
        ipr.link("add", ifname="nltb2a", kind="veth", peer="nltb2b")
        index = ipr.link_lookup(ifname="nltb2a")[0]
        ipr.link("set", index=index, state="up")
        for pool in SUBNET_POOLS:
            ipr.route("add", dst=str(pool), oif=index)
    with pytest.raises(NetlabError) as raised:
        choose_subnet("delta", netns=own_netns)
    assert raised.value.render() == (
        "error: no free /16 left in 10.128.0.0/9, 172.16.0.0/12: every block overlaps a route, "
        "an address or another lab\n"
        "  where: lab 'delta'\n"
        "  fix: set `subnet:` in the scenario to a free range, or `netlab down` unused labs"
    )
