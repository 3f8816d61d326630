"""The plan: addresses, interface names, routes and forwarding, without root."""

from __future__ import annotations

import ipaddress

import pytest

from netlab.errors import NetlabError
from netlab.lab.plan import egress_path, plan_from_json, plan_lab, plan_to_json
from tests.lab.scenarios import dumbbell, line, link, scenario, two_hosts

SUBNET = ipaddress.IPv4Network("10.200.0.0/16")


def test_two_hosts_share_one_slash30() -> None:
    plan = plan_lab(two_hosts("p2"), SUBNET)
    alice, bob = plan.hosts["alice"], plan.hosts["bob"]
    assert alice.namespace == "nl-p2.alice"
    assert [i.name for i in alice.interfaces] == ["to-bob"]
    assert str(alice.interfaces[0].address) == "10.200.0.1/30"
    assert str(bob.interfaces[0].address) == "10.200.0.2/30"
    assert alice.routes == [] and bob.routes == []  # directly connected only
    assert "net.ipv4.ip_forward" not in alice.sysctls


def test_line_routes_through_the_router() -> None:
    plan = plan_lab(line("p3"), SUBNET)
    alice = plan.hosts["alice"]
    assert [str(r.destination) for r in alice.routes] == ["0.0.0.0/0"]
    assert str(alice.routes[0].via) == "10.200.0.2"
    assert plan.hosts["router"].sysctls["net.ipv4.ip_forward"] == "1"
    path = egress_path(plan, "alice", plan.hosts["bob"].address)
    assert [(i.host, i.name) for i in path] == [("alice", "to-router"), ("router", "to-bob")]


def test_dumbbell_crosses_the_bottleneck_once() -> None:
    plan = plan_lab(dumbbell("pd", 4), SUBNET)
    path = egress_path(plan, "s0", plan.hosts["r3"].address)
    assert [i.host for i in path] == ["s0", "left", "right"]
    left_routes = {str(r.destination): r.device for r in plan.hosts["left"].routes}
    assert len(left_routes) == 4  # one per receiver-side link
    assert set(left_routes.values()) == {"to-right"}


def test_parallel_links_get_distinct_interface_names() -> None:
    s = scenario("pp", ["a", "b"], [link("a", "b", name="one"), link("a", "b", name="two")])
    plan = plan_lab(s, SUBNET)
    assert [i.name for i in plan.hosts["a"].interfaces] == ["eth0", "eth1"]


def test_subnet_too_small_is_an_error_with_a_fix() -> None:
    with pytest.raises(NetlabError) as info:
        plan_lab(dumbbell("px", 4), ipaddress.IPv4Network("10.9.0.0/29"))
    assert "has room for 2 links, the scenario has 9" in info.value.what
    assert info.value.fix and "larger subnet" in info.value.fix


def test_plan_survives_the_state_file_round_trip() -> None:
    plan = plan_lab(dumbbell("pj", 2), SUBNET)
    again = plan_from_json(plan_to_json(plan))
    assert again.hosts == plan.hosts
    assert again.links == plan.links


def test_lab_and_host_names_never_share_a_namespace() -> None:
    """Lab x-a with host b and lab x with host a-b once both got nl-x-a-b."""
    from netlab.lab.plan import namespace_name

    assert namespace_name("x-a", "b") != namespace_name("x", "a-b")
    assert namespace_name("x-a", "b") == "nl-x-a.b"


def test_probe_namespaces_are_disjoint_from_lab_namespaces() -> None:
    """The stale-probe sweep matches nl-probe-<pid>-<hex>; a lab's namespaces
    always contain the separator, so even a lab named like a probe is safe."""
    from netlab.lab.plan import namespace_name
    from netlab.preflight import capabilities

    pattern = capabilities.PROBE_NAMESPACE_PATTERN
    for lab, host in (("probe-123-ab", "c"), ("probe-1", "ab"), ("nl-probe-1", "a")):
        assert not pattern.fullmatch(namespace_name(lab, host))
    assert pattern.fullmatch(capabilities.probe_namespace_name())
