"""Where each backend captures a link, and which packets belong to which
direction, on a three-host line (alice - router - bob), from the plan alone."""

from __future__ import annotations

import ipaddress

from netlab.capture.points import capture_points, destinations
from netlab.lab.plan import plan_lab
from tests.lab.scenarios import line

SUBNET = ipaddress.IPv4Network("10.77.0.0/24")


def test_user_backend_captures_each_end_once_for_both_directions() -> None:
    plan = plan_lab(line("pts"), SUBNET)
    router, bob = plan.hosts["router"].namespace, plan.hosts["bob"].namespace
    points = capture_points(plan, "user", "router-bob")
    assert [(p.namespace, p.interface, p.serves) for p in points] == [
        (router, "to-bob", (("up", "entry"), ("down", "exit"))),
        (bob, "to-router", (("up", "exit"), ("down", "entry"))),
    ]
    (entry, exit_) = capture_points(plan, "user", "router-bob", ("up",))
    assert entry.serves == (("up", "entry"),) and exit_.serves == (("up", "exit"),)


def test_kernel_backend_takes_the_entry_from_a_mirror_of_the_sending_end() -> None:
    plan = plan_lab(line("pts"), SUBNET)
    router, bob = plan.hosts["router"].namespace, plan.hosts["bob"].namespace
    points = capture_points(plan, "kernel", "router-bob", ("down",))
    assert [(p.namespace, p.interface, p.mirror_of, p.serves) for p in points] == [
        (bob, "nlcap1d", "to-router", (("down", "entry"),)),
        (router, "to-bob", None, (("down", "exit"),)),
    ]
    assert all(len(p.interface) <= 15 for p in points)


def test_a_direction_carries_the_packets_for_the_hosts_behind_its_far_end() -> None:
    plan = plan_lab(line("pts"), SUBNET)
    addresses = {h: {str(i.address.ip) for i in plan.hosts[h].interfaces} for h in plan.hosts}
    by_direction = destinations(plan, "router-bob")
    assert set(by_direction["up"]) == addresses["bob"]
    assert set(by_direction["down"]) == addresses["alice"] | addresses["router"]
    assert set(destinations(plan, "alice-router")["up"]) == addresses["router"] | addresses["bob"]
