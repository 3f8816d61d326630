"""The simulator-to-emulator gap of one policy on the same scenarios, measured.

For each scenario (one RTC flow estimated by ``policy``, its path shaped by
a trace), the scenario runs in a lab with the agent serving the given
checkpoint (``netlab.session.run_session``, as ``netlab run`` does), and the
same call runs in the simulator: the path's traced hop as the bottleneck
(its queue, loss and base delay; the other hops' delays added), REMB
returning over the reverse path's delay, the lab receiver's 200 ms poll,
and the sender seed the lab gives the flow (so SSRCs and frame-size noise
match). Both sides are scored by ``endpoints.metrics`` over the same span
(the flow's first sent packet plus the simulated duration); the report
lists each metric from both and the difference (emulation − simulation),
and the JSON also keeps the comparison with results.json's own figures
(which span the whole run).

What the simulator leaves out is where a gap comes from: other flows (it
carries one), CPU scheduling and socket timing, the agent's deadline and
fallback, the user-space link's wake-up latency or the kernel qdisc's
behaviour under tc, and cross-hop queueing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endpoints.metrics.summary import rtc_flow_metrics
from endpoints.rtc import logs as rtc_logs
from netlab.agent.checkpoints import load_policy
from netlab.errors import NetlabError
from netlab.lab.plan import Interface, egress_path, plan_lab
from netlab.learning.sim.core import LAB_POLL_S, SimConfig
from netlab.learning.sim.episode import EpisodeResult, run_episode
from netlab.learning.sim.sender import SenderSettings
from netlab.scenario.model import Agent, Estimator, Flow, Scenario
from shaping.traces import Trace, load_trace

#: Metrics compared: (label, results path, unit scale for display).
COMPARED = (("recv_rate_bps", ("metrics", "recv_rate_bps")),
            ("delay_p95_ms", ("metrics", "delay_p95_ms")),
            ("loss", ("metrics", "loss")),
            ("network_score", ("scores", "network")))
_PLAN_SUBNET = ipaddress.IPv4Network("10.255.0.0/16")  # only to compute routes


@dataclass
class SimSetup:
    """The simulated twin of a scenario's policy flow."""

    flow: Flow
    flow_index: int
    trace: Trace
    config: SimConfig
    seed: int
    notes: list[str] = field(default_factory=list)


def policy_flow(scenario: Scenario) -> tuple[Flow, int]:
    """The scenario's one RTC flow with ``estimator: policy`` (and its index among flows
    with endpoint processes, which is how the lab seeds its sender)."""
    index = 0
    found: list[tuple[Flow, int]] = []
    for flow in scenario.flows:
        if flow.kind == "probe":
            continue
        estimator = flow.options.get("estimator")
        if flow.kind == "rtc" and isinstance(estimator, Estimator) and estimator.kind == "policy":
            found.append((flow, index))
        index += 1
    if len(found) != 1:
        raise NetlabError(f"scenario has {len(found)} RTC flows with estimator: policy",
                          where=f"{scenario.source or scenario.name}: flows",
                          fix="give exactly one rtc flow with estimator: policy")
    return found[0]


def _path(scenario: Scenario, src: str, dst: str) -> list[Interface]:
    plan = plan_lab(scenario, _PLAN_SUBNET)
    return egress_path(plan, src, plan.hosts[dst].address)


def _mean_delay(hop: Interface, base_dir: Path | None) -> float:
    """A hop's one-way delay: its trace's time-weighted mean where it has one."""
    if hop.egress.trace is not None:
        trace = load_trace(hop.egress.trace, base_dir=base_dir)
        if trace.delays_s is not None:
            widths = [seg.duration_s for seg in trace.segments()]
            return sum(d * w for d, w in zip(trace.delays_s, widths, strict=True)) / sum(widths)
    return hop.egress.shape.delay_s


def sim_setup(scenario: Scenario) -> SimSetup:
    """Bottleneck, delays, sender settings and seed of the scenario's policy flow."""
    flow, index = policy_flow(scenario)
    base_dir = scenario.source.parent if scenario.source else None
    forward = _path(scenario, flow.src, flow.dst)
    reverse = _path(scenario, flow.dst, flow.src)
    traced = [hop for hop in forward if hop.egress.trace is not None]
    notes: list[str] = []
    where = f"{scenario.source or scenario.name}: links"
    if len(traced) > 1:
        raise NetlabError("the policy flow's path has more than one traced hop", where=where,
                          fix="trace one hop of the path (the simulator has one bottleneck)")
    if traced:
        hop = traced[0]
        assert hop.egress.trace is not None
        trace = load_trace(hop.egress.trace, base_dir=base_dir)
    else:
        rated = [h for h in forward if h.egress.shape.rate_bps is not None]
        if not rated:
            raise NetlabError("the policy flow's path has neither a trace nor a rate",
                              where=where, fix="shape one hop with a trace or a rate")
        hop = min(rated, key=lambda h: h.egress.shape.rate_bps or 0)
        trace = Trace.constant(float(hop.egress.shape.rate_bps or 0), scenario.duration_s)
        notes.append(f"no trace: the slowest hop ({hop.link}) as a constant rate")
    others = sum(h.egress.shape.delay_s for h in forward if h is not hop)
    base = dataclasses.replace(hop.egress.shape, delay_s=hop.egress.shape.delay_s + others)
    if trace.delays_s is not None and others > 0:
        notes.append(f"the trace's delays replace the base delay; {others * 1e3:.0f} ms of "
                     "other hops not added")
    feedback = sum(_mean_delay(h, base_dir) for h in reverse)
    others_flows = [f.id for f in scenario.flows if f.kind != "probe" and f is not flow]
    if others_flows:
        notes.append(f"flows left out of the simulation: {', '.join(others_flows)}")
    if flow.start_s > 0:
        notes.append(f"the flow starts at {flow.start_s:g} s; the simulated trace starts at 0")
    end = flow.stop_s if flow.stop_s is not None else scenario.duration_s
    options = flow.options
    defaults = SenderSettings()

    def rate(key: str, default: float) -> float:
        value = options.get(key)
        return float(value) if isinstance(value, (int, float)) else default

    sender = SenderSettings(start_bps=rate("initial_rate", defaults.start_bps),
                            min_bps=rate("min_rate", defaults.min_bps),
                            max_bps=rate("max_rate", defaults.max_bps))
    config = SimConfig(step_s=LAB_POLL_S, duration_s=max(0.1, end - flow.start_s), link=base,
                       loop=hop.egress.trace_loop, feedback_delay_s=feedback,
                       sender=sender)
    return SimSetup(flow, index, trace, config, scenario.seed * 1000 + index, notes)


def with_checkpoint(scenario: Scenario, checkpoint: Path, flow: Flow) -> Scenario:
    """The scenario with the policy flow's agent serving ``checkpoint``."""
    agents = [a for a in scenario.agents if a.host != flow.dst]
    old = next((a for a in scenario.agents if a.host == flow.dst), None)
    agent = (dataclasses.replace(old, checkpoint=str(checkpoint.resolve())) if old
             else Agent(host=flow.dst, checkpoint=str(checkpoint.resolve())))
    return dataclasses.replace(scenario, agents=(*agents, agent))


def _get(data: dict[str, Any], path: tuple[str, str]) -> float | None:
    value = data.get(path[0], {}).get(path[1])
    return float(value) if isinstance(value, (int, float)) else None


def compare(sim: EpisodeResult, emulated: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per metric: sim, emulation, difference (emulation − sim)."""
    sim_view = {"metrics": sim.metrics, "scores": sim.scores}
    out: dict[str, dict[str, float | None]] = {}
    for name, path in COMPARED:
        s, e = _get(sim_view, path), _get(emulated, path)
        out[name] = {"sim": s, "emulation": e,
                     "difference": None if s is None or e is None else e - s}
    return out


def flow_window_metrics(run_dir: Path, flow_id: str, duration_s: float) -> dict[str, Any]:
    """The emulated flow's metrics over the same span the simulation scores: from its
    first sent packet for ``duration_s`` (results.json scores the whole run, start-up
    and shut-down included, which dilutes the rate of a flow that ran for less)."""
    directory = run_dir / "flows" / flow_id
    recv = rtc_logs.read_kind(directory / "receiver", rtc_logs.RECEIVER_PACKETS)
    sent = rtc_logs.read_kind(directory / "sender", rtc_logs.SENDER_PACKETS)
    if sent.size == 0 or recv.size == 0:
        return {"metrics": {}, "scores": {}}
    start = int(sent["send_ns"].min())
    summary = rtc_flow_metrics(recv, sent, start_ns=start, end_ns=start + round(duration_s * 1e9))
    return {"metrics": summary.metrics, "scores": summary.scores}


Emulator = Callable[[Scenario], Path]


def gap(checkpoint: Path, scenarios: list[Scenario], emulate: Emulator,
        report: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """For each scenario: emulate it (``emulate`` returns the run directory), simulate
    it, and compare. Returns one JSON-ready entry per scenario."""
    policy = load_policy(checkpoint)
    entries: list[dict[str, Any]] = []
    for scenario in scenarios:
        setup = sim_setup(scenario)
        if report:
            report(f"{scenario.name}: simulating {setup.trace.name or 'constant rate'}")
        sim = run_episode(policy, setup.trace, setup.config, seed=setup.seed)
        if report:
            report(f"{scenario.name}: emulating ({scenario.duration_s:g} s)")
        run_dir = emulate(with_checkpoint(scenario, checkpoint, setup.flow))
        results = json.loads((run_dir / "results.json").read_text())
        flow = next(f for f in results["flows"] if f["id"] == setup.flow.id)
        aligned = flow_window_metrics(run_dir, setup.flow.id, sim.sim_s)
        agents = results.get("agents") or []
        entries.append({
            "scenario": str(scenario.source or scenario.name), "flow": setup.flow.id,
            "trace": setup.trace.name, "run_dir": str(run_dir), "backend": results["backend"],
            "compare": compare(sim, aligned), "results_json": compare(sim, flow),
            "notes": setup.notes,
            "sim": {"speed": round(sim.speed, 1), "wall_s": round(sim.wall_s, 3),
                    "decisions": sim.decisions, "polls": sim.polls,
                    "mean_reward": sim.mean_reward},
            "emulation": {"agents": [{k: a.get(k) for k in ("host", "decisions", "misses",
                                                             "fallback_s")} for a in agents],
                          "fidelity_faithful": results.get("fidelity", {}).get("faithful")},
        })
    return entries
