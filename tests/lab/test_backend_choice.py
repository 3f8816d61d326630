"""Each link's backend: htb where the check says it can replay the trace, else the
user-space link, chosen automatically, said in words and kept in results.json.

Two crafted Mahimahi traces (``tests.shaping.test_replay_representable``): a
1 s outage (htb keeps it) and bursts of 20 packets every 200 ms (htb would
spread them over the gaps between).  The choice itself is checked on a plan; a
whole ``netlab run`` then builds the mixed lab (a veth pair with tc on one
link, a link process on the other) and reports each link from its own logs.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from netlab.lab.backends import choose_link_backends
from netlab.lab.plan import plan_lab
from netlab.preflight import probe_kernel
from netlab.scenario import load_scenario
from tests.cli.runs import netlab_run
from tests.lab.scenarios import unique_lab
from tests.shaping.test_replay_representable import bursty_trace, gap_trace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a lab")

SCENARIO = """
name: {name}
duration: {duration}
hosts: [alice, router, bob]
links:
  - endpoints: [alice, router]
    up: {{trace: kept.trace, queue: 100pkt}}
    down: {{trace: kept.trace, queue: 100pkt}}
  - endpoints: [router, bob]
    up: {{trace: bursty.trace, queue: 100pkt}}
    down: {{rate: 20Mbit}}
flows:
  - {{kind: tcp, from: alice, to: bob}}
"""


def _write(tmp_path: Path, name: str, duration: str = "5s") -> Path:
    for file, trace in (("kept.trace", gap_trace(5, 1500, 1000)),
                        ("bursty.trace", bursty_trace())):
        assert trace.opportunities_ms is not None
        (tmp_path / file).write_text("\n".join(map(str, trace.opportunities_ms)) + "\n")
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO.format(name=name, duration=duration))
    return path


def test_a_direction_htb_cannot_replay_moves_its_link_to_the_user_space_link(
        tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, "choice"))
    plan = plan_lab(scenario, ipaddress.IPv4Network("10.250.0.0/24"))
    caps = probe_kernel()
    choice = choose_link_backends(scenario, plan, "kernel", None, caps)
    by = {(d.link, d.direction): d for d in choice.directions}
    assert by[("alice-router", "up")].backend == "kernel"
    assert by[("alice-router", "up")].reason.startswith("kernel: htb: trace representable")
    assert by[("router-bob", "up")].backend == "user"
    assert by[("router-bob", "up")].reason.startswith(
        "user-space link: htb: trace not representable: a 500 ms bin would miss the trace")
    assert by[("router-bob", "down")].backend == "user"
    assert by[("router-bob", "down")].reason.startswith(
        "user-space link: its link's up direction needs it (one link process carries both)")
    assert choice.links("user", plan) == ["router-bob"]
    # --backend kernel is obeyed, with the check's verdict as a warning.
    asked = choose_link_backends(scenario, plan, "kernel", "kernel", caps)
    assert {d.backend for d in asked.directions} == {"kernel"}
    assert [d.direction for d in asked.directions if d.warning] == ["up"]
    # --backend user (or a kernel without what the links need): all user-space links.
    users = choose_link_backends(scenario, plan, "user", "user", caps)
    assert {d.backend for d in users.directions} == {"user"}
    assert users.shown() == []  # preflight already says why the lab is on the user link
    assert all(d.reason == "user-space link: asked for (--backend user)"
               for d in users.directions)


def test_a_run_shapes_each_link_with_its_chosen_backend_and_says_why(tmp_path: Path) -> None:
    _, results = netlab_run(_write(tmp_path, unique_lab("bch")), tmp_path / "runs")
    assert results["backend"] == "kernel"
    choice = {(c["link"], c["direction"]): c for c in results["backend_choice"]}
    assert choice[("alice-router", "up")]["backend"] == "kernel"
    assert choice[("alice-router", "up")]["htb_check"]["representable"] is True
    assert choice[("router-bob", "up")]["backend"] == "user"
    assert choice[("router-bob", "up")]["htb_check"]["leaky_gaps"][0]["frames"] > 2
    sources = {(e["link"], e["direction"]): e["source"] for e in results["fidelity"]["links"]}
    assert sources[("alice-router", "up")] == "kernel replay log"
    assert sources[("router-bob", "up")] == "user-space link log"
    (flow,) = results["flows"]
    assert flow["metrics"]["recv_rate_bps"] > 0.5e6  # through a veth and a TUN pair
    links = {(c["link"], c["backend"]) for c in results["clock"]["links"]}
    assert links == {("alice-router", "kernel"), ("router-bob", "user")}
    assert {c["offset_ms"] for c in results["clock"]["links"]} == {0.0}
