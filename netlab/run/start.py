"""Start a run on a built lab: agents, flow processes and trace replays on one
clock; :class:`ActiveRun` then stops them and collects the results.

The run has one time zero: every part that takes a while to start (replayers,
receivers, senders) is started first and waits; once the slowest is ready,
:meth:`ActiveRun.begin` picks an instant a little ahead and hands that same
instant to every trace replayer, every user-space link and every flow
(:mod:`netlab.run.clock` reads back when each really started)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab import paths
from netlab.agent.lab import AgentSet, start_agents
from netlab.lab import lifecycle
from netlab.lab.replay import TraceReplays, link_processes, start_kernel_replays
from netlab.log_problems import find_log_problems
from netlab.preflight import probe_kernel
from netlab.probes.links import ProbeMeasurement, probe_flow_results
from netlab.run import clock, traffic
from netlab.run.collect import fairness_by_link, flow_results
from netlab.run.fidelity import collect as collect_fidelity
from netlab.run.flows import ZERO_LEAD_S, FlowRunner
from netlab.run.kinds.probe import ProbeRun
from netlab.run.results import FlowResult, build_results, write_results
from netlab.scenario.model import Scenario
from shaping.fidelity.machine import MachineLoad, MachineSnapshot, machine_load
from shaping.fidelity.machine import snapshot as machine_snapshot
from shaping.replay import read_replay_log, sleep_until_ns
from shaping.replay.log import ReplayLog


@dataclass
class ActiveRun:
    """One run of a built lab: agents, flow processes and trace replays,
    started together on one clock; ``stop`` then ``results`` collect it.

    ``netlab up``/``run`` and the learners' episodes share this, so a run's
    results mean the same thing wherever it was started from.
    """

    scenario: Scenario
    lab: lifecycle.Lab
    run_dir: Path
    agents: AgentSet
    runner: FlowRunner
    replays: TraceReplays
    start_ns: int
    started: float
    replay_logs: dict[tuple[str, str], ReplayLog] = field(default_factory=dict)
    agent_results: list[dict[str, Any]] = field(default_factory=list)
    end_ns: int = 0

    @property
    def base_dir(self) -> Path | None:
        return self.scenario.source.parent if self.scenario.source else None

    flow_entries: list[FlowResult] | None = None  # kept from the flows' end
    capture: traffic.Capture | None = None
    machine_start: MachineSnapshot | None = None  # the machine's own load, for the verdict
    machine: MachineLoad | None = None
    begun: bool = False

    def begin(self) -> int:
        """The run's one time zero, handed to every trace and flow; returns at it.

        Call once everything that runs before it is ready (``runner.start_receivers``).
        The instant is ``ZERO_LEAD_S`` ahead, so every replayer, link and sender has
        it before it comes, however the scheduler orders the hand-out."""
        zero = hand_out_zero(self.replays, self.lab.shaping.user_links, self.runner)
        self.start_ns = zero
        self.begun = True
        self.machine_start = machine_snapshot(
            link_processes(self.replays, self.lab.shaping.user_links))
        sleep_until_ns(zero)
        return zero

    def flows_ended(self) -> None:
        """Mark the end of the flows (the end of their time series); once."""
        self.end_ns = self.end_ns or time.monotonic_ns()

    def stop(self) -> None:
        """Stop replays and agents (after the flows: their clients wrote summaries)."""
        self.flows_ended()
        if self.machine_start is not None and self.machine is None:
            self.machine = machine_load(self.machine_start, machine_snapshot(
                link_processes(self.replays, self.lab.shaping.user_links)))
        self.replay_logs = self.replays.stop()
        self.agent_results = self.agents.stop()

    def results(self, probes: list[ProbeMeasurement], *, stop_links: bool) -> dict[str, Any]:
        """Fidelity, per-flow metrics and agents of a stopped run, written to the run directory."""
        if stop_links:
            self.lab.shaping.stop()  # user-space links flush their logs on exit
        return self._write(probes, self.replay_logs, final=True)

    def results_so_far(self, *, final: bool = False) -> dict[str, Any]:
        """The same while replays, links and agents go on (a lab that stays up):
        their logs as written so far; ``final``: the capture stops here."""
        self.flows_ended()
        logs = {(r.link, r.direction): read_replay_log(r.log_path)
                for r in self.replays.replays if r.log_path.exists()}
        return self._write([], logs, final=final)

    def _write(self, probes: list[ProbeMeasurement],
               replay_logs: dict[tuple[str, str], ReplayLog], *, final: bool) -> dict[str, Any]:
        """``probes``: link probes run outside the flows (their own ``flows[]`` entries)."""
        if not self.begun:  # stopped before its zero ('netlab down' while it was built)
            self.start_ns = self.start_ns or self.end_ns or time.monotonic_ns()
        lab = self.lab
        flow_probes = [rf.measurement for rf in self.runner.flows
                       if isinstance(rf, ProbeRun) and rf.measurement is not None]
        fidelity = collect_fidelity(lab.plan, probes=probes + flow_probes,
                                    replay_logs=replay_logs,
                                    user_links=lab.shaping.logged_links(),
                                    start_ns=self.start_ns, base_dir=self.base_dir,
                                    machine=self.machine)
        if self.flow_entries is None:
            self.flow_entries = flow_results(
                self.runner.flows, lab.plan, self.run_dir, start_ns=self.start_ns,
                end_ns=self.end_ns, base_dir=self.base_dir)
        flows = probe_flow_results(probes) + self.flow_entries
        rows: list[dict[str, Any]] = []
        if final and self.capture is not None:
            rows, flows = traffic.collect(self.capture, lab.plan, self.run_dir, flows,
                                          start_ns=self.start_ns, end_ns=self.end_ns)
        results = build_results(self.scenario, lab.backend, flows, fidelity,
                                started=self.started, ended=time.time())
        if self.capture is not None:
            results["traffic"] = rows
        results["fairness"] = fairness_by_link(flows, lab.plan)
        results["agents"] = self.agent_results
        # Which backend shaped each link direction, and why (htb where it is faithful).
        results["backend_choice"] = lab.backends.to_json()
        results["log_problems"] = find_log_problems(self.run_dir, paths.lab_log_dir(lab.name))
        # The run's time zero (the traces' and the flows'), for aligning one's own
        # measurements, and when each link and flow really started from it.
        results["clock"] = clock.report(self.start_ns, replay_logs,
                                        lab.shaping.logged_links(), self.runner.flows)
        write_results(self.run_dir, results)
        return results


def hand_out_zero(replays: TraceReplays, user_links: dict[str, Any], runner: FlowRunner
                  ) -> int:
    """Pick the run's time zero (``ZERO_LEAD_S`` ahead) and give it to every trace
    replayer, user-space link and waiting sender; returns it (still ahead)."""
    zero = time.monotonic_ns() + round(ZERO_LEAD_S * 1e9)
    replays.start_at(zero)
    for handle in user_links.values():
        handle.restart_trace(zero)
    runner.release(zero)
    return zero


def start_run(scenario: Scenario, lab: lifecycle.Lab, run_dir: Path, *,
              explore: bool = False, until_down: bool = False) -> ActiveRun:
    """Agents first, then the flow runner, then the replays (ready, waiting for
    the zero ``ActiveRun.begin`` gives them).

    ``until_down``: the replays follow their traces until ``netlab down``
    (a lab that stays up), not only for the scenario's duration."""
    started = time.time()
    base_dir = scenario.source.parent if scenario.source else None
    agents = start_agents(scenario, lab.plan, lab.journal, run_dir, explore=explore)
    runner = FlowRunner(scenario, lab.plan, lab.journal, run_dir, agents)
    replays = TraceReplays()
    kernel_links = lab.backends.links("kernel", lab.plan)
    if kernel_links:
        replays = start_kernel_replays(
            lab.plan, lab.journal, netem=probe_kernel().has_qdisc("netem"),
            base_dir=base_dir, duration_s=scenario.duration_s, until_down=until_down,
            links=kernel_links)
    capture = traffic.start(scenario, lab, run_dir)
    return ActiveRun(scenario, lab, run_dir, agents, runner, replays, 0, started,
                     capture=capture)

