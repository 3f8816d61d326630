"""The foreground part of ``up`` and ``run``: build, run, collect, maybe down.

SIGTERM is turned into KeyboardInterrupt so Ctrl-C and a plain ``kill``
share one clean-up path. Only in this process: pyroute2 forks helper
children (``IPRoute(netns=...)``) and ends them with SIGTERM, and a child
that raised would unwind a copy of this process's stack and run its
``finally`` blocks, removing namespaces (a probe's, a lab's) the parent is
still using. A forked child exits at once instead.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from netlab.agent.lab import AgentSet, start_agents
from netlab.fidelity import collect as collect_fidelity
from netlab.flow_results import fairness_by_link, flow_results
from netlab.flows import FlowRunner
from netlab.lab import lifecycle
from netlab.lab.replay import TraceReplays, start_kernel_replays
from netlab.live import LiveFlow, LiveView
from netlab.preflight import probe_kernel
from netlab.probes.links import ProbeMeasurement, probe_flow_results, probe_links
from netlab.results import build_results, new_run_dir, print_summary, write_results
from netlab.scenario.model import Scenario
from shaping.replay.log import ReplayLog

_handler_owner_pid = 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _handler_owner_pid:
        os._exit(128 + signum)  # a forked child: never run the parent's clean-up
    raise KeyboardInterrupt


def install_sigterm_handler() -> None:
    global _handler_owner_pid
    _handler_owner_pid = os.getpid()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def run_session(scenario: Scenario, *, backend: str | None, subnet: ipaddress.IPv4Network | None,
                out_base: Path, quiet: bool, keep_up: bool) -> Path:
    """Build the lab, run its flows for the duration and write results.

    The lab is torn down on any exception, Ctrl-C or SIGTERM; after a normal
    end it stays up when ``keep_up`` (``netlab up``), else it goes down.
    """
    console = Console(stderr=True, quiet=quiet)
    install_sigterm_handler()
    built = time.monotonic()
    lab = lifecycle.up(scenario, backend=backend, subnet=subnet)
    finished = False
    try:
        console.print(f"[green]up[/green] {lab.name}: {len(lab.plan.hosts)} hosts, "
                      f"{len(lab.plan.links)} links, {lab.backend} shaping, subnet "
                      f"{lab.plan.subnet} ({time.monotonic() - built:.2f} s)")
        run = start_run(scenario, lab, new_run_dir(out_base, scenario.name))
        measurements: list[ProbeMeasurement] = []
        try:
            if run.runner.flows:
                run.runner.start_receivers()
                with LiveView(live_flows(run.runner), scenario.duration_s, console=console,
                              quiet=quiet, title=scenario.name, backend=lab.backend,
                              start_monotonic=time.monotonic(), summary=False):
                    run.runner.run(scenario.duration_s)
            else:
                with Progress(TextColumn("{task.description}"), BarColumn(),
                              TimeRemainingColumn(), console=console, transient=True,
                              disable=quiet) as progress:
                    task = progress.add_task("probing links", total=1.0)
                    measurements = probe_links(
                        lab.plan, scenario.duration_s,
                        progress=lambda what, done: progress.update(
                            task, completed=done, description=f"probing {what}"))
        finally:
            run.stop()
        results = run.results(measurements, stop_links=not keep_up)
        run_dir = run.run_dir
        from netlab.plots import plot_run  # matplotlib only once there is something to plot

        plot_run(run_dir)
        width = None if sys.stdout.isatty() else 120
        print_summary(results, run_dir, Console(quiet=quiet, width=width))
        finished = True
        return run_dir
    finally:
        if not (finished and keep_up):
            report = lab.down()
            console.print(f"[green]down[/green] {lab.name}: removed {len(report.removed)} objects")
        else:
            lab.shaping.release()
            console.print(f"lab {lab.name} stays up: 'netlab exec {lab.name} HOST -- CMD', "
                          f"'netlab check {lab.name}', then 'netlab down {lab.name}'")


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

    def stop(self) -> None:
        """Stop replays and agents (after the flows: their clients wrote summaries)."""
        self.replay_logs = self.replays.stop()
        self.agent_results = self.agents.stop()
        self.end_ns = time.monotonic_ns()

    def results(self, probes: list[ProbeMeasurement], *, stop_links: bool) -> dict[str, Any]:
        """Fidelity, per-flow metrics and agents, written to the run directory."""
        lab = self.lab
        if stop_links:
            lab.shaping.stop()  # user-space links flush their logs on exit
        fidelity = collect_fidelity(lab.plan, probes=probes, replay_logs=self.replay_logs,
                                    user_links=lab.shaping.user_links_seen,
                                    start_ns=self.start_ns, base_dir=self.base_dir)
        flows = probe_flow_results(probes) + flow_results(
            self.runner.flows, lab.plan, self.run_dir, start_ns=self.start_ns,
            end_ns=self.end_ns, base_dir=self.base_dir)
        results = build_results(self.scenario, lab.backend, flows, fidelity,
                                started=self.started, ended=time.time())
        results["fairness"] = fairness_by_link(flows, lab.plan)
        results["agents"] = self.agent_results
        write_results(self.run_dir, results)
        return results


def start_run(scenario: Scenario, lab: lifecycle.Lab, run_dir: Path, *,
              explore: bool = False) -> ActiveRun:
    """Agents first, then the flow runner, then the replays' shared start."""
    started = time.time()
    base_dir = scenario.source.parent if scenario.source else None
    agents = start_agents(scenario, lab.plan, lab.journal, run_dir, explore=explore)
    runner = FlowRunner(scenario, lab.plan, lab.journal, run_dir, agents)
    replays = TraceReplays()
    if lab.backend == "kernel":
        replays = start_kernel_replays(
            lab.plan, lab.journal, netem=probe_kernel().has_qdisc("netem"),
            base_dir=base_dir, duration_s=scenario.duration_s)
    start_ns = replays.start_ns or user_trace_epoch(lab) or time.monotonic_ns()
    return ActiveRun(scenario, lab, run_dir, agents, runner, replays, start_ns, started)


def live_flows(runner: FlowRunner) -> list[LiveFlow]:
    """What the live view tails: each endpoint's live.jsonl."""
    flows = []
    for fp in runner.flows:
        f = fp.flow
        control = f.options.get("estimator", "gcc") if f.kind == "rtc" else f.options.get(
            "cc", "cubic")
        flows.append(LiveFlow(f.id, f.kind, f.src, f.dst, f"{f.kind} {control}",
                              fp.receiver_dir / "live.jsonl", start_s=f.start_s, stop_s=f.stop_s,
                              extra_paths=(fp.sender_dir / "live.jsonl",)))
    return flows


def user_trace_epoch(lab: lifecycle.Lab) -> int | None:
    """Where user-space links replay traces, their schedules count from the
    link process's start: the run's time zero is the first traced link's, so
    capacity series, fidelity bins and flows share the trace's clock (links
    started a few ms apart keep that small offset between them)."""
    traced = [name for name, (a, b) in lab.plan.links.items()
              if a.egress.trace is not None or b.egress.trace is not None]
    starts = [lab.shaping.user_links[name].start_ns for name in traced
              if name in lab.shaping.user_links]
    return min(starts) if starts else None
