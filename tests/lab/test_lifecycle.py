"""Build and tear down real labs: 2 hosts, a 3-host line, a 4+4 dumbbell."""

from __future__ import annotations

import pytest

from netlab.errors import NetlabError
from netlab.lab import lifecycle, netns, state
from netlab.lab.builder import read_sysctl
from netlab.probes.reachability import check_all_pairs
from tests.lab.scenarios import dumbbell, line, link, scenario, two_hosts, unique_lab


def _assert_gone(lab: lifecycle.Lab) -> None:
    for host in lab.plan.hosts.values():
        assert not netns.exists(host.namespace)
    assert state.load(lab.name) is None


def test_two_hosts_up_check_down() -> None:
    lab = lifecycle.up(two_hosts(unique_lab("t2h")))
    try:
        assert state.load(lab.name) is not None
        assert state.load(lab.name).status == "up"  # type: ignore[union-attr]
        checks = check_all_pairs(lab.plan, count=5)
        assert len(checks) == 2
        assert all(c.received == c.sent for c in checks), checks
        assert all(c.ok for c in checks), checks
    finally:
        lab.down()
    _assert_gone(lab)


def test_line_forwards_through_router_and_sets_sysctls_per_namespace() -> None:
    s = line(unique_lab("t3l"))
    lab = lifecycle.up(s)
    try:
        assert read_sysctl(lab.plan.hosts["router"].namespace, "net.ipv4.ip_forward") == "1"
        assert read_sysctl(lab.plan.hosts["alice"].namespace, "net.ipv4.ip_forward") == "0"
        checks = check_all_pairs(lab.plan, count=3)
        assert len(checks) == 6
        assert all(c.received == c.sent for c in checks), checks
    finally:
        lab.down()
    _assert_gone(lab)
    with open("/proc/sys/net/ipv4/ip_forward") as root_value:
        assert root_value.read().strip() in {"0", "1"}  # never written by the lab


def test_user_sysctls_reach_only_their_host() -> None:
    s = scenario(unique_lab("tsy"), ["alice", "bob"], [link("alice", "bob")],
                 sysctls={"alice": {"net.ipv4.tcp_ecn": "1"}})
    lab = lifecycle.up(s)
    try:
        assert read_sysctl(lab.plan.hosts["alice"].namespace, "net.ipv4.tcp_ecn") == "1"
        assert read_sysctl(lab.plan.hosts["bob"].namespace, "net.ipv4.tcp_ecn") == "2"
    finally:
        lab.down()


def test_dumbbell_four_by_four_reaches_every_pair() -> None:
    lab = lifecycle.up(dumbbell(unique_lab("tdb"), 4))
    try:
        assert len(lab.plan.hosts) == 10
        checks = check_all_pairs(lab.plan, count=2)
        assert len(checks) == 90
        assert all(c.received == c.sent for c in checks), [c for c in checks if not c.received]
    finally:
        lab.down()
    _assert_gone(lab)


def test_second_up_of_the_same_name_is_refused() -> None:
    s = two_hosts(unique_lab("tdu"))
    lab = lifecycle.up(s)
    try:
        with pytest.raises(NetlabError) as info:
            lifecycle.up(s)
        rendered = info.value.render()
        assert f"a lab named '{s.name}' is already up" in rendered
        assert f"fix: `netlab down {s.name}`" in rendered
    finally:
        lab.down()


def test_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from netlab.lab import builder

    def explode(*args: object) -> None:
        raise RuntimeError("injected failure after namespaces and veths")

    monkeypatch.setattr(builder, "configure_host", explode)
    s = line(unique_lab("tfb"))
    with pytest.raises(RuntimeError):
        lifecycle.up(s)
    for host in ("alice", "router", "bob"):
        assert not netns.exists(f"nl-{s.name}.{host}")
    assert state.load(s.name) is None


def test_down_of_unknown_lab_says_how_to_find_labs() -> None:
    with pytest.raises(NetlabError) as info:
        lifecycle.down("nosuchlab")
    assert info.value.fix == "'netlab status' lists the labs that are up"
