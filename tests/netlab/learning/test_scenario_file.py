"""A user's scenario with the controller under test swapped in: only the flows it
drives change, agents follow, and nothing else of the file does."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab.errors import NetlabError
from netlab.learning.scenario_file import ScenarioFile, with_controller
from netlab.scenario.model import Estimator, Scenario

REPO = Path(__file__).resolve().parents[3]
CHECKPOINT = str(REPO / "models" / "opennetlab-pretrained.pth")


def _estimators(scenario: Scenario) -> dict[str, str]:
    return {f.id: str(f.options.get("estimator")) for f in scenario.flows if f.kind == "rtc"}


def test_policy_flows_take_the_controller_and_the_rest_runs_as_written() -> None:
    source = ScenarioFile.load(REPO / "scenarios" / "policy-vs-gcc.yaml")
    tuned, ids = with_controller(source, lab="fte0", estimator="policy", checkpoint=CHECKPOINT,
                                 deadline_s=0.02)
    assert ids == ["policy"] and tuned.name == "fte0" and tuned.subnet is None
    assert _estimators(tuned) == {"policy": "policy", "gcc": "gcc"}
    [agent] = tuned.agents  # the file's own agent: its 1 ms deadline and fallback, our weights
    assert (agent.host, agent.checkpoint, agent.deadline_s, agent.fallback) == (
        "bob", CHECKPOINT, 0.001, "gcc")
    baseline, ids = with_controller(source, lab="fte1", estimator="gcc", checkpoint=None,
                                    deadline_s=0.02)
    assert ids == ["policy"] and _estimators(baseline) == {"policy": "gcc", "gcc": "gcc"}
    assert baseline.agents == ()  # nothing left for bob's agent to serve
    original = ScenarioFile.load(REPO / "scenarios" / "policy-vs-gcc.yaml")
    assert original == source  # the file's description is unchanged
    assert (tuned.links, tuned.duration_s, tuned.seed) == (baseline.links, 20.0, 3)


def test_without_a_policy_flow_every_rtc_flow_is_driven(tmp_path: Path) -> None:
    text = (REPO / "scenarios" / "hsdpa-call.yaml").read_text().replace(
        "  - {id: call, kind: rtc, from: alice, to: bob, estimator: gcc}",
        "  - {id: call, kind: rtc, from: alice, to: bob, estimator: gcc, probe_interval: 0s}\n"
        "  - {id: two, kind: rtc, from: bob, to: alice, estimator: fixed:500kbit}\n"
        "  - {id: bulk, kind: tcp, from: alice, to: bob, cc: cubic}").replace(
        "../traces/", f"{REPO}/traces/")
    path = tmp_path / "two-calls.yaml"
    path.write_text(text)
    scenario, ids = with_controller(ScenarioFile.load(path), lab="fte0", estimator="policy",
                                    checkpoint=CHECKPOINT, deadline_s=0.02)
    assert ids == ["call", "two"]
    assert _estimators(scenario) == {"call": "policy", "two": "policy"}
    call = next(f for f in scenario.flows if f.id == "call")
    assert "probe_interval" not in call.options  # GCC's knob, refused with a policy
    assert sorted((a.host, a.deadline_s, a.fallback) for a in scenario.agents) == [
        ("alice", 0.02, "keep"), ("bob", 0.02, "keep")]
    baseline, _ = with_controller(ScenarioFile.load(path), lab="fte1", estimator="gcc",
                                  checkpoint=None, deadline_s=0.02)
    assert next(f for f in baseline.flows if f.id == "call").options["probe_interval"] == 0.0
    assert next(f for f in baseline.flows if f.id == "two").options["estimator"] == Estimator(
        "gcc")


def test_shipped_copies_replace_the_files_the_scenario_names(tmp_path: Path) -> None:
    source = ScenarioFile.load(REPO / "scenarios" / "hsdpa-call.yaml")
    [trace] = source.referenced()
    assert trace == "../traces/cellular/3g-synthetic-hsdpa-1.json"
    copy = tmp_path / "trace.json"
    copy.write_bytes((REPO / "traces" / "cellular" / "3g-synthetic-hsdpa-1.json").read_bytes())
    moved = ScenarioFile(source.path, source.name, source.duration_s, {trace: str(copy)})
    scenario, _ = with_controller(ScenarioFile.from_dict(moved.as_dict()), lab="fte0",
                                  estimator="gcc", checkpoint=None, deadline_s=0.02)
    assert scenario.links[0].up.trace == str(copy)


def test_a_tcp_policy_host_cannot_also_serve_the_rtc_policy(tmp_path: Path) -> None:
    text = (REPO / "scenarios" / "tcp-policy.yaml").read_text()
    path = tmp_path / "both.yaml"
    path.write_text(text.replace("flows:", "flows:\n  - {id: call, kind: rtc, from: bob, "
                                           "to: alice}").replace("../", f"{REPO}/"))
    scenario = ScenarioFile.load(path)
    with pytest.raises(NetlabError, match="serves a TCP policy"):
        with_controller(scenario, lab="fte0", estimator="policy", checkpoint=CHECKPOINT,
                        deadline_s=0.02)
