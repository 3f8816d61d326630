"""The simulator-to-emulator gap: the same calls under the same controllers, both ways.

For each scenario and each controller (a policy checkpoint, GCC, a fixed
rate), the scenario's RTC flow under test runs in a lab with that
controller as its estimator (``netlab.run.session.run_session``, as
``netlab run`` does), and the same call runs in the simulator: the path's
traced hop as the bottleneck (its queue, loss and base delay; the other
hops' delays added), RTCP returning over the reverse path's delay, the lab
receiver's 200 ms poll, and the sender seed the lab gives the flow (so
SSRCs and frame-size noise match). Both are the lab's own sender and
receiver (:mod:`endpoints.rtc.sender_core`, ``receiver_core``); GCC is the
sender's GCC in both. Each emulated run gets its own simulated twin: the
trace from the moment that run's sender started (a lab replays it from the
run's start and starts the sender once its receiver is ready), scored by
``endpoints.metrics`` over the same span as the run: from the flow's first
sent packet for as long as its sender sent.
:mod:`netlab.learning.gap_report` turns the pairs into intervals and
rankings.

What the simulator leaves out is where a gap comes from: other flows (it
carries one), CPU scheduling and socket timing, the agent's deadline and
fallback (its answers are always on time), the user-space link's wake-up
latency or the kernel qdisc's behaviour under tc, loss and queueing on the
way back, and cross-hop queueing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endpoints.metrics.summary import rtc_flow_metrics
from endpoints.rtc import logs as rtc_logs
from endpoints.rtc.sender_core import SenderSettings
from netlab.agent.checkpoints import load_policy
from netlab.agent.policies.base import Policy
from netlab.errors import NetlabError
from netlab.lab.plan import Interface, egress_path, plan_lab
from netlab.learning.sim.core import LAB_POLL_S, SimConfig
from netlab.learning.sim.episode import simulate
from netlab.scenario.model import Agent, Estimator, Flow, Scenario
from shaping.traces import Trace, load_trace

#: Metrics compared: (name, where in a flow's results).
COMPARED = (("recv_rate_bps", ("metrics", "recv_rate_bps")),
            ("delay_p95_ms", ("metrics", "delay_p95_ms")),
            ("loss", ("metrics", "loss")),
            ("frame_delay_p95_ms", ("metrics", "frame_delay_p95_ms")),
            ("freezes", ("metrics", "freezes")),
            ("network_score", ("scores", "network")))
#: The pacer's interval: a sender's last packet leaves within one of its end.
SEND_TICK_NS = 5_000_000
#: The agent's reply budget when the gap adds an agent to serve a policy (eval's default).
DEFAULT_DEADLINE_S = 0.02
_PLAN_SUBNET = ipaddress.IPv4Network("10.255.0.0/16")  # only to compute routes


@dataclass(frozen=True)
class Controller:
    """What sets the flow's rate: a scenario estimator, with the checkpoint of a policy."""

    name: str
    estimator: Estimator
    checkpoint: Path | None = None

    def __post_init__(self) -> None:
        if (self.estimator.kind == "policy") != (self.checkpoint is not None):
            raise ValueError("a policy controller needs a checkpoint, and only it")

    def describe(self) -> str:
        return str(self.checkpoint) if self.checkpoint is not None else str(self.estimator)


@dataclass
class SimSetup:
    """The simulated twin of a scenario's flow under test."""

    flow: Flow
    flow_index: int
    trace: Trace
    config: SimConfig
    seed: int
    base_dir: Path | None
    notes: list[str] = field(default_factory=list)


def flow_under_test(scenario: Scenario) -> tuple[Flow, int]:
    """The RTC flow with ``estimator: policy``, else the scenario's only RTC flow; and
    its index among flows with endpoint processes (how the lab seeds its sender)."""
    rtc: list[tuple[Flow, int]] = []
    index = 0
    for flow in scenario.flows:
        if flow.kind == "probe":
            continue
        if flow.kind == "rtc":
            rtc.append((flow, index))
        index += 1
    policy = [(f, i) for f, i in rtc if _estimator(f).kind == "policy"]
    chosen = policy if policy else rtc
    if len(chosen) != 1:
        raise NetlabError(f"scenario has {len(chosen)} candidate RTC flows to compare",
                          where=f"{scenario.source or scenario.name}: flows",
                          fix="give one rtc flow with estimator: policy, or only one rtc flow")
    return chosen[0]


def _estimator(flow: Flow) -> Estimator:
    value = flow.options.get("estimator", Estimator("gcc"))
    assert isinstance(value, Estimator)
    return value


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
    """Bottleneck, delays, sender settings and seed of the scenario's flow under test."""
    flow, index = flow_under_test(scenario)
    base_dir = scenario.source.parent if scenario.source else None
    forward = _path(scenario, flow.src, flow.dst)
    reverse = _path(scenario, flow.dst, flow.src)
    traced = [hop for hop in forward if hop.egress.trace is not None]
    notes: list[str] = []
    where = f"{scenario.source or scenario.name}: links"
    if len(traced) > 1:
        raise NetlabError("the flow's path has more than one traced hop", where=where,
                          fix="trace one hop of the path (the simulator has one bottleneck)")
    if traced:
        hop = traced[0]
        assert hop.egress.trace is not None
        trace = load_trace(hop.egress.trace, base_dir=base_dir)
    else:
        rated = [h for h in forward if h.egress.shape.rate_bps is not None]
        if not rated:
            raise NetlabError("the flow's path has neither a trace nor a rate",
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
    end = flow.stop_s if flow.stop_s is not None else scenario.duration_s
    options = flow.options
    defaults = SenderSettings()

    def rate(key: str, default: float) -> float:
        value = options.get(key)
        return float(value) if isinstance(value, int | float) else default

    probe_interval = flow.probe_interval_s
    sender = SenderSettings(start_bps=rate("initial_rate", defaults.start_bps),
                            min_bps=rate("min_rate", defaults.min_bps),
                            max_bps=rate("max_rate", defaults.max_bps),
                            probe_interval_s=(defaults.probe_interval_s if probe_interval is None
                                              else probe_interval))
    config = SimConfig(step_s=LAB_POLL_S, duration_s=max(0.1, end - flow.start_s), link=base,
                       loop=hop.egress.trace_loop, feedback_delay_s=feedback, sender=sender)
    return SimSetup(flow, index, trace, config, scenario.seed * 1000 + index, base_dir, notes)


def with_controller(scenario: Scenario, flow: Flow, controller: Controller, *,
                    deadline_s: float = DEFAULT_DEADLINE_S) -> Scenario:
    """The scenario with ``flow`` under ``controller``: its estimator replaced, and
    for a policy the receiver's agent serving the checkpoint (added if missing)."""
    new_flow = dataclasses.replace(flow, options={**flow.options,
                                                  "estimator": controller.estimator})
    flows = tuple(new_flow if f is flow else f for f in scenario.flows)
    agents = [a for a in scenario.agents if a.host != flow.dst]
    old = next((a for a in scenario.agents if a.host == flow.dst), None)
    if controller.checkpoint is not None:
        checkpoint = str(controller.checkpoint.resolve())
        agents.append(dataclasses.replace(old, checkpoint=checkpoint) if old
                      else Agent(host=flow.dst, checkpoint=checkpoint, deadline_s=deadline_s))
    elif old is not None and any(_estimator(f).kind == "policy" for f in flows
                                 if f.kind == "rtc" and f.dst == flow.dst):
        agents.append(old)  # another policy flow still needs it
    return dataclasses.replace(scenario, flows=flows, agents=tuple(agents))


def _get(data: dict[str, Any], path: tuple[str, str]) -> float | None:
    value = data.get(path[0], {}).get(path[1])
    return float(value) if isinstance(value, int | float) else None


def metric_vector(results: dict[str, Any]) -> dict[str, float | None]:
    """The compared metrics of one flow's results (``metrics`` and ``scores``)."""
    return {name: _get(results, path) for name, path in COMPARED}


@dataclass
class EmulatedWindow:
    """What a lab's run of the flow under test did, as the simulation must match it."""

    offset_s: float  # the first packet's time into the run (and the link's trace)
    span_s: float  # how long its sender sent, at most the call's duration
    results: dict[str, Any]  # metrics and scores over that span


def emulated_window(run_dir: Path, flow: dict[str, Any], run_start_ns: int | None,
                    duration_s: float) -> EmulatedWindow:
    """The flow's metrics from its first sent packet for as long as its sender sent.

    A lab replays the trace from the run's start and starts the sender once its
    receiver is ready; it stops the flow at the scenario's end. results.json scores
    the whole run, start-up and shut-down included.
    """
    directory = run_dir / "flows" / str(flow["id"])
    recv = rtc_logs.read_kind(directory / "receiver", rtc_logs.RECEIVER_PACKETS)
    sent = rtc_logs.read_kind(directory / "sender", rtc_logs.SENDER_PACKETS)
    started = float(flow.get("started_s") or 0.0)
    if sent.size == 0 or recv.size == 0:
        return EmulatedWindow(started, 0.0, {"metrics": {}, "scores": {}})
    start = int(sent["send_ns"].min())
    offset = (start - run_start_ns) / 1e9 if run_start_ns is not None else started
    span_ns = min(round(duration_s * 1e9), int(sent["send_ns"].max()) - start + SEND_TICK_NS)
    summary = rtc_flow_metrics(recv, sent, start_ns=start, end_ns=start + span_ns)
    return EmulatedWindow(max(0.0, offset), span_ns / 1e9,
                          {"metrics": summary.metrics, "scores": summary.scores})


Emulator = Callable[[Scenario], Path]
Reporter = Callable[[str], None]


def _sim_controller(controller: Controller, policies: dict[Path, Policy]
                    ) -> Policy | Estimator:
    if controller.checkpoint is None:
        return controller.estimator
    if controller.checkpoint not in policies:
        policies[controller.checkpoint] = load_policy(controller.checkpoint)
    return policies[controller.checkpoint]


def gap(controllers: Sequence[Controller], scenarios: Sequence[Scenario], emulate: Emulator,
        *, repeat: int = 1, deadline_s: float = DEFAULT_DEADLINE_S,
        report: Reporter | None = None) -> list[dict[str, Any]]:
    """For each scenario and controller: emulate the call ``repeat`` times (``emulate``
    returns the run directory) and simulate each run's twin: the same trace from the
    moment that run's sender started, scored over the span it sent for. Returns one
    JSON-ready entry per scenario × controller."""
    policies: dict[Path, Policy] = {}
    entries: list[dict[str, Any]] = []
    for scenario in scenarios:
        setup = sim_setup(scenario)
        for controller in controllers:
            runs = []
            for r in range(repeat):
                if report:
                    report(f"{scenario.name}: {controller.name} in a lab "
                           f"({scenario.duration_s:g} s, run {r + 1}/{repeat})")
                run_dir = emulate(with_controller(scenario, setup.flow, controller,
                                                  deadline_s=deadline_s))
                results = json.loads((run_dir / "results.json").read_text())
                flow = next(f for f in results["flows"] if f["id"] == setup.flow.id)
                duration_s = setup.config.duration_s or scenario.duration_s
                window = emulated_window(run_dir, flow,
                                         results.get("clock", {}).get("start_monotonic_ns"),
                                         duration_s)
                config = dataclasses.replace(setup.config, trace_offset_s=window.offset_s)
                sim, _ = simulate(_sim_controller(controller, policies), setup.trace, config,
                                  seed=setup.seed, base_dir=setup.base_dir)
                twin = sim.summary(window.span_s or None)
                runs.append({"run_dir": str(run_dir), "backend": results.get("backend"),
                             "faithful": results.get("fidelity", {}).get("faithful"),
                             "trace_offset_s": round(window.offset_s, 4),
                             "span_s": round(window.span_s, 3),
                             "metrics": metric_vector(window.results),
                             "sim": metric_vector({"metrics": twin.metrics,
                                                   "scores": twin.scores}),
                             "sim_decisions": sim.decisions,
                             "results_json": metric_vector(flow),
                             "agents": [{k: a.get(k) for k in ("host", "decisions", "misses",
                                                                "fallback_s")}
                                        for a in results.get("agents") or []]})
            entries.append({
                "scenario": str(scenario.source or scenario.name), "flow": setup.flow.id,
                "trace": setup.trace.name, "controller": controller.name,
                "estimator": controller.describe(), "emulation": runs, "notes": setup.notes})
    return entries
