"""Valid scenarios become the typed objects the lab consumes, with documented defaults."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from netlab.cli.main import main
from netlab.errors import NetlabError
from netlab.paths import lab_dir
from netlab.scenario import ScenarioInvalid, load_scenario, load_scenario_text
from netlab.scenario.model import Estimator, Scenario
from shaping.spec import LinkShape, QueueLimit

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "scenarios").glob("*.yaml"))


def load(text: str) -> Scenario:
    return load_scenario_text(textwrap.dedent(text), "test.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioInvalid) as caught:
        load(text)
    return [p.render() for p in caught.value.problems]


BASE = """
name: t
duration: 30s
hosts: [alice, bob]
"""


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_scenarios_are_valid(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.source == path
    assert scenario.hosts


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"two-hosts", "line", "dumbbell", "lte-rtc"}


def test_runnable_examples_need_no_netem() -> None:
    """Until the user-space link lands, the basic examples use only rate and queue."""
    for stem in ("two-hosts", "line", "dumbbell"):
        scenario = load_scenario(REPO / "scenarios" / f"{stem}.yaml")
        for link in scenario.links:
            assert not link.up.shape.needs_netem and not link.down.shape.needs_netem


def test_two_hosts_example() -> None:
    scenario = load_scenario(REPO / "scenarios" / "two-hosts.yaml")
    (link,) = scenario.links
    assert (link.name, link.a, link.b) == ("alice-bob", "alice", "bob")
    expected = LinkShape(rate_bps=10_000_000, queue=QueueLimit(packets=20))
    assert link.up.shape == expected and link.down.shape == expected


def test_dumbbell_bottleneck_joins_the_routers() -> None:
    scenario = load_scenario(REPO / "scenarios" / "dumbbell.yaml")
    assert len(scenario.hosts) == 10
    bottleneck = next(link for link in scenario.links if link.name == "bottleneck")
    assert {bottleneck.a, bottleneck.b} == {"left", "right"}
    assert bottleneck.up.shape.rate_bps == 20_000_000
    others = [link for link in scenario.links if link is not bottleneck]
    assert all(link.up.shape.rate_bps is None for link in others)


def test_defaults() -> None:
    scenario = load(BASE)
    assert scenario.seed == 0
    assert scenario.links == () and scenario.flows == () and scenario.agents == ()
    assert scenario.subnet is None
    assert scenario.duration_s == 30.0


def test_link_level_values_apply_to_both_directions_and_up_down_override() -> None:
    scenario = load(BASE + textwrap.dedent("""
    links:
      - endpoints: [alice, bob]
        rate: 10Mbit
        delay: 20ms
        queue: 64kB
        up: {rate: 2Mbit, loss: 1%}
        down: {delay: 5ms, jitter: 1ms}
    """))
    (link,) = scenario.links
    assert link.up.shape == LinkShape(2_000_000, 0.02, 0.0, 0.01, QueueLimit(bytes=64_000))
    assert link.down.shape == LinkShape(10_000_000, 0.005, 0.001, 0.0, QueueLimit(bytes=64_000))


def test_a_directions_trace_replaces_the_link_level_rate() -> None:
    scenario = load(BASE + textwrap.dedent("""
    links:
      - endpoints: [alice, bob]
        rate: 10Mbit
        up: {trace: steps/10-2-10mbit}
    """))
    (link,) = scenario.links
    assert link.up.trace == "steps/10-2-10mbit" and link.up.shape.rate_bps is None
    assert link.down.trace is None and link.down.shape.rate_bps == 10_000_000


def test_hosts_as_mapping_with_sysctls() -> None:
    scenario = load("""
    name: t
    duration: 1s
    hosts:
      alice:
        sysctls: {net.ipv4.tcp_ecn: 1, net.core.default_qdisc: pfifo_fast}
      bob:
    links:
      - endpoints: [alice, bob]
    """)
    assert scenario.host("alice").sysctls == {
        "net.ipv4.tcp_ecn": "1",
        "net.core.default_qdisc": "pfifo_fast",
    }
    assert scenario.host("bob").sysctls == {}


def test_flows_defaults_and_options() -> None:
    scenario = load(BASE + textwrap.dedent("""
    links:
      - endpoints: [alice, bob]
    flows:
      - {kind: rtc, from: alice, to: bob}
      - {kind: tcp, from: bob, to: alice, start: 5s, stop: 20s, rate: 3Mbit}
      - {kind: rtc, from: alice, to: bob, estimator: "fixed:1.5Mbit", max_rate: 4Mbit}
      - {kind: rtc, from: alice, to: bob, estimator: "plugin:estimators/mine.py"}
      - {kind: probe, id: ping, from: alice, to: bob, interval: 10ms, size: 100B}
      - {kind: rtc, from: bob, to: alice, estimator: policy}
    agents:
      alice:
    """))
    rtc, tcp, fixed, plugin, probe, policy = scenario.flows
    assert (rtc.id, rtc.src, rtc.dst, rtc.start_s, rtc.stop_s) == ("rtc-0", "alice", "bob", 0, None)
    assert rtc.options == {"estimator": Estimator("gcc")}
    assert tcp.id == "tcp-1" and (tcp.start_s, tcp.stop_s) == (5.0, 20.0)
    assert tcp.options == {"cc": "cubic", "rate": 3_000_000, "rate_control": "kernel"}
    assert fixed.options == {"estimator": Estimator("fixed", rate_bps=1_500_000),
                             "max_rate": 4_000_000}
    assert str(fixed.options["estimator"]) == "fixed:1.5Mbit"
    assert plugin.options["estimator"] == Estimator("plugin", plugin="estimators/mine.py")
    assert probe.id == "ping" and probe.options == {"interval": 0.01, "size": 100}
    assert policy.options["estimator"] == Estimator("policy")
    (agent,) = scenario.agents
    assert (agent.host, agent.checkpoint, agent.deadline_s, agent.fallback) == (
        "alice", None, 0.001, "keep")


def test_subnet() -> None:
    scenario = load(BASE + "subnet: 10.77.0.0/16\n")
    assert scenario.subnet == ipaddress.IPv4Network("10.77.0.0/16")


def test_subnet_must_hold_every_link() -> None:
    links = "\n".join(f"  - {{name: l{i}, endpoints: [alice, bob]}}" for i in range(65))
    found = problems(BASE + "subnet: 10.1.2.0/24\nlinks:\n" + links + "\n")
    assert found == [
        "test.yaml:5: subnet: expected a network with at least 260 addresses "
        "(4 for each of 65 links), found 10.1.2.0/24 (256 addresses); use a shorter prefix"
    ]


def test_yaml_anchors_and_merge_keys_share_link_specs() -> None:
    scenario = load(BASE + textwrap.dedent("""
    links:
      - endpoints: [alice, bob]
        up: &lte {rate: 5Mbit, queue: 50pkt}
        down: {<<: *lte, rate: 1Mbit}
    """))
    (link,) = scenario.links
    assert link.up.shape == LinkShape(5_000_000, queue=QueueLimit(packets=50))
    assert link.down.shape == LinkShape(1_000_000, queue=QueueLimit(packets=50))


def test_a_problem_in_one_link_does_not_hide_problems_elsewhere() -> None:
    found = problems(BASE + textwrap.dedent("""
    links:
      - endpoints: [alice, bob]
        rate: 10 megabits
      - endpoints: [alice, carol]
    flows:
      - {kind: tcp, from: alice, to: bob, start: 40s}
    """))
    assert [line.split(": ")[1] for line in found] == [
        "links[0].rate", "links[1].endpoints[1]", "flows[0].start"]


def test_an_unknown_link_end_does_not_also_claim_flows_are_unroutable() -> None:
    found = problems(BASE.replace("[alice, bob]", "[alice, bob, carol]") + textwrap.dedent("""
    links:
      - endpoints: [alice, caro]
    flows:
      - {kind: tcp, from: alice, to: carol}
    """))
    assert len(found) == 1 and "unknown host 'caro'" in found[0]


def test_invalid_text_is_reported_with_the_source_name() -> None:
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario_text("name: x\n", "inline")
    assert caught.value.render().startswith("error: inline is not a valid scenario (2 problems)")
    assert isinstance(caught.value, NetlabError)


def test_missing_file_is_a_netlab_error() -> None:
    with pytest.raises(NetlabError) as caught:
        load_scenario(Path("/nonexistent/scenario.yaml"))
    assert "does not exist" in caught.value.what


def test_validate_command_summarises(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "scenarios" / "lte-rtc.yaml")]) == 0
    out = capsys.readouterr().out
    assert "valid scenario 'lte-rtc' (60s, seed 7)" in out
    assert "hosts   alice, bob" in out
    assert "alice→bob  trace traces/cellular/verizon-lte-short.up, delay 20ms, queue 100pkt" in out
    assert "bob→alice  trace traces/cellular/verizon-lte-short.down, delay 20ms, loss 0.5%" in out
    assert "rtc-0  rtc  alice→bob  0s–end  estimator gcc" in out
    assert "tcp-1  tcp  alice→bob  10s–end  cc bbr" in out
    assert "bob  checkpoint models/pretrained.pth, deadline 1ms, fallback gcc" in out


def test_up_creates_nothing_for_an_invalid_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Validation comes first: an invalid file fails before any namespace exists."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: nltd-bad\nduration: 5s\nhosts: [alice]\n"
                   "links: [{endpoints: [alice, x]}]\n")
    assert main(["up", str(bad)]) == 1
    assert not list(Path("/run/netns").glob("nl-nltd-bad*"))
    assert not lab_dir("nltd-bad").exists()
    err = capsys.readouterr().err
    assert "is not a valid scenario (1 problem)" in err


def test_the_format_documented_in_scenarios_readme_is_valid() -> None:
    readme = (REPO / "scenarios" / "README.md").read_text(encoding="utf-8")
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = load_scenario_text(block, "README.md")
    (link,) = scenario.links
    assert link.up.shape.rate_bps == 10_000_000 and link.up.shape.delay_s == 0.02
    assert link.down.trace == "cellular/verizon-lte-short.down" and link.down.shape.rate_bps is None
