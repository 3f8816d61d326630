"""The foreground part of ``up`` and ``run``: build, run, collect, maybe down.

SIGTERM is turned into KeyboardInterrupt so Ctrl-C and a plain ``kill``
share one clean-up path.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from netlab.agent.lab import start_agents
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


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def install_sigterm_handler() -> None:
    signal.signal(signal.SIGTERM, _sigterm)


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
        started = time.time()
        run_dir = new_run_dir(out_base, scenario.name)
        base_dir = scenario.source.parent if scenario.source else None
        agents = start_agents(scenario, lab.plan, lab.journal, run_dir)
        runner = FlowRunner(scenario, lab.plan, lab.journal, run_dir, agents)
        replays = TraceReplays()
        if lab.backend == "kernel":
            replays = start_kernel_replays(
                lab.plan, lab.journal, netem=probe_kernel().has_qdisc("netem"),
                base_dir=base_dir, duration_s=scenario.duration_s)
        start_ns = replays.start_ns or user_trace_epoch(lab) or time.monotonic_ns()
        measurements: list[ProbeMeasurement] = []
        try:
            if runner.flows:
                runner.start_receivers()
                with LiveView(live_flows(runner), scenario.duration_s, console=console,
                              quiet=quiet, title=scenario.name, backend=lab.backend,
                              start_monotonic=time.monotonic(), summary=False):
                    runner.run(scenario.duration_s)
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
            replay_logs = replays.stop()
            agent_results = agents.stop()  # after the flows: their clients wrote summaries
        end_ns = time.monotonic_ns()
        if not keep_up:
            lab.shaping.stop()  # user-space links flush their logs on exit
        fidelity = collect_fidelity(lab.plan, probes=measurements, replay_logs=replay_logs,
                                    user_links=lab.shaping.user_links_seen, start_ns=start_ns,
                                    base_dir=base_dir)
        flows = probe_flow_results(measurements) + flow_results(
            runner.flows, lab.plan, run_dir, start_ns=start_ns, end_ns=end_ns,
            base_dir=base_dir)
        results = build_results(scenario, lab.backend, flows, fidelity, started=started,
                                ended=time.time())
        results["fairness"] = fairness_by_link(flows, lab.plan)
        results["agents"] = agent_results
        write_results(run_dir, results)
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
