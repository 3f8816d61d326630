"""``netlab gap`` without labs: the flow under test, its controllers and its twin in the
simulator; the report's intervals, exclusions and rankings on made-up pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netlab.learning.gap import Controller, flow_under_test, sim_setup, with_controller
from netlab.learning.gap_report import build_report, kendall_tau
from netlab.scenario import load_scenario_text
from netlab.scenario.model import Estimator

REPO = Path(__file__).resolve().parents[3]
CHECKPOINT = REPO / "models" / "opennetlab-pretrained.pth"
SCENARIO = """
name: gapt
duration: 12s
seed: 4
hosts: [alice, router, bob]
links:
  - endpoints: [alice, router]
    rate: 50Mbit
    delay: 5ms
  - endpoints: [router, bob]
    rate: 2Mbit
    delay: 15ms
    queue: 40pkt
flows:
  - {id: bulk, kind: tcp, from: alice, to: bob, cc: cubic}
  - {id: call, kind: rtc, from: alice, to: bob, estimator: gcc, probe_interval: 0s,
     min_rate: 100kbit}
"""


def test_the_flow_under_test_and_its_simulated_twin() -> None:
    scenario = load_scenario_text(SCENARIO)
    flow, index = flow_under_test(scenario)
    assert flow.id == "call" and index == 1
    setup = sim_setup(scenario)
    assert setup.seed == 4 * 1000 + 1  # the lab's sender seed for this flow
    assert setup.config.sender.probe_interval_s == 0.0
    assert setup.config.sender.min_bps == 100_000
    assert setup.config.link.delay_s == pytest.approx(0.020)  # both hops' delays
    assert setup.trace.capacity_at(3.0) == 2_000_000
    assert setup.config.duration_s == 12.0
    assert any("bulk" in note for note in setup.notes)


def test_a_controller_replaces_the_estimator_and_brings_its_agent() -> None:
    scenario = load_scenario_text(SCENARIO)
    flow, _ = flow_under_test(scenario)
    policy = with_controller(scenario, flow, Controller("onl", Estimator("policy"), CHECKPOINT),
                             deadline_s=0.02)
    call = next(f for f in policy.flows if f.id == "call")
    assert call.options["estimator"] == Estimator("policy")
    assert [(a.host, a.checkpoint, a.deadline_s) for a in policy.agents] == [
        ("bob", str(CHECKPOINT.resolve()), 0.02)]
    flow, _ = flow_under_test(policy)  # now the policy flow
    fixed = with_controller(policy, flow, Controller("f", Estimator("fixed", rate_bps=600_000)))
    assert next(f for f in fixed.flows if f.id == "call").options["estimator"] == Estimator(
        "fixed", rate_bps=600_000)
    assert fixed.agents == ()  # nothing else needed bob's agent
    assert scenario.flows[1].options["estimator"] == Estimator("gcc")  # the original kept
    with pytest.raises(ValueError):
        Controller("x", Estimator("gcc"), CHECKPOINT)


def _entry(scenario: str, controller: str, sim: dict[str, float],
           runs: list[tuple[dict[str, float], bool]]) -> dict[str, Any]:
    return {"scenario": scenario, "controller": controller,
            "emulation": [{"metrics": m, "sim": sim, "faithful": ok} for m, ok in runs]}


def test_report_intervals_exclusions_and_rankings() -> None:
    scores = {"gcc": [40.0, 44.0, 42.0, 46.0], "onl": [50.0, 49.0, 51.0, 50.0],
              "fixed": [30.0, 35.0, 33.0, 31.0]}
    entries = []
    for i in range(4):
        for name, values in scores.items():
            sim = {"network_score": values[i], "loss": 0.0, "delay_p95_ms": 50.0 + i}
            emulated = {"network_score": values[i] - 2.0, "loss": 0.0,
                        "delay_p95_ms": 60.0 + i}
            runs = [(emulated, True)]
            if name == "gcc" and i == 0:  # an unfaithful run that would pull the mean
                runs.append(({"network_score": 0.0, "loss": 0.5, "delay_p95_ms": 900.0},
                             False))
            entries.append(_entry(f"s{i}", name, sim, runs))
    report = build_report(entries)
    assert report.unfaithful == {"gcc": 1, "onl": 0, "fixed": 0}
    summary = report.as_dict()
    gcc = summary["per_controller"]["gcc"]["network_score"]
    assert gcc["difference"]["mean"] == pytest.approx(-2.0) and gcc["difference"]["ci95"] == 0
    assert gcc["sim"]["mean"] == pytest.approx(43.0) and gcc["sim"]["n"] == 4
    assert gcc["sim"]["ci95"] == pytest.approx(3.182 * (20 / 3) ** 0.5 / 2, rel=0.01)  # t(3)
    assert summary["pooled"]["delay_p95_ms"]["difference"]["mean"] == pytest.approx(10.0)
    ranking = summary["ranking"]["network_score"]
    assert ranking["tau"] == 1.0 and ranking["same_order"] is True
    assert ranking["sim_order"] == ["onl", "gcc", "fixed"]
    assert "alike" in summary["verdict"]
    assert summary["ranking"]["loss"]["tau"] is None  # all tied: no order to compare
    # Kept on purpose, the unfaithful run counts (and moves gcc's emulated mean).
    kept = build_report(entries, keep_unfaithful=True).as_dict()
    assert kept["per_controller"]["gcc"]["network_score"]["emulation"]["mean"] == pytest.approx(
        (19.0 + 42.0 + 40.0 + 44.0) / 4)


def test_reversed_rankings_are_reported_as_such() -> None:
    entries = [_entry(f"s{i}", name, {"network_score": value},
                      [({"network_score": 100.0 - value}, True)])
               for i in range(3) for name, value in (("a", 10.0 + i), ("b", 20.0), ("c", 30.0))]
    ranking = build_report(entries).as_dict()["ranking"]["network_score"]
    assert ranking["tau"] == -1.0 and ranking["same_order"] is False
    assert ranking["per_scenario_tau"]["mean"] == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_a_twin_starts_where_its_run_started_in_the_trace() -> None:
    """A lab's sender starts after the link's replay: offset into a 1 → 3 Mbit/s step,
    the simulated call meets the step that much earlier."""
    from netlab.learning.sim import RtcSimulation, SimConfig
    from shaping.spec import LinkShape, QueueLimit
    from shaping.traces import load_trace

    trace = load_trace("steps/1-3-1mbit")  # 1 Mbit/s, 3 Mbit/s from 10 s

    def received_mbit(offset_s: float) -> tuple[float, float]:
        config = SimConfig(duration_s=6.0, trace_offset_s=offset_s,
                           link=LinkShape(delay_s=0.01, queue=QueueLimit(packets=30)))
        sim = RtcSimulation(trace, config, 1, Estimator("fixed", rate_bps=5_000_000))
        while sim.advance():
            pass
        recv, _ = sim.records()
        at = recv["arrival_ns"] / 1e9
        early, late = (at > 2) & (at < 3), (at > 5) & (at < 6)
        assert sim.capacity()[1][0] == trace.capacity_at(offset_s)
        return (recv["size"][early].sum() * 8 / 1e6, recv["size"][late].sum() * 8 / 1e6)

    assert received_mbit(0.0) == pytest.approx((0.96, 0.96), abs=0.06)
    assert received_mbit(6.5) == pytest.approx((0.96, 2.88), abs=0.15)
