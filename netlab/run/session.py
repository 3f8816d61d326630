"""The foreground part of ``up`` and ``run``: build, run, collect, maybe down.

SIGTERM is turned into KeyboardInterrupt (:class:`Terminated`) so Ctrl-C and
a plain ``kill`` share one clean-up path. Only in this process: pyroute2 forks helper
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from rich.console import Console

from netlab.lab import crashlog, lifecycle, ownership
from netlab.lab.backends import choice_lines
from netlab.run.flows import FlowRunner
from netlab.run.kinds import kind_of
from netlab.run.live import LiveFlow, LiveView
from netlab.run.results import new_run_dir
from netlab.run.start import start_run
from netlab.run.summary import print_summary
from netlab.scenario.model import Scenario

_handler_owner_pid = 0


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unlike Ctrl-C, a foreground ``up`` given it takes its lab down."""


_ending = False  # a signal decided the lab goes down: later ones must not cut that short
_ctrl_c_keeps = False  # in ``up``'s flows: a Ctrl-C ends the flows early and keeps the lab


def _interrupt(signum: int, frame: FrameType | None) -> None:
    global _ending
    if os.getpid() != _handler_owner_pid:
        os._exit(128 + signum)  # a forked child: never run the parent's clean-up
    if _ending:
        return
    terminate = signum in (signal.SIGTERM, signal.SIGHUP)
    # Only a Ctrl-C while an ``up``'s flows run keeps the lab; every other
    # raise ends in teardown, which no later signal may cut short.  CPython
    # runs pending handlers in signal-number order, so a SIGTERM and a Ctrl-C
    # that arrive together are seen Ctrl-C (2) first: outside the flows that
    # Ctrl-C must already count as the end.
    _ending = terminate or not _ctrl_c_keeps
    raise Terminated if terminate else KeyboardInterrupt


def _teardown_begins() -> None:
    """From here the lab goes down: signals no longer raise (teardown holds them too)."""
    global _ending
    _ending = True


@contextmanager
def _ctrl_c_keeps_lab(keep_up: bool) -> Iterator[None]:
    """The flows phase of ``up``: a Ctrl-C in it ends the flows, not the lab."""
    global _ctrl_c_keeps
    _ctrl_c_keeps = keep_up
    try:
        yield
    finally:
        _ctrl_c_keeps = False


def install_sigterm_handler() -> None:
    global _handler_owner_pid, _ending
    _handler_owner_pid, _ending = os.getpid(), False
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)  # the terminal closed: like SIGTERM


def run_session(scenario: Scenario, *, backend: str | None, subnet: ipaddress.IPv4Network | None,
                out_base: Path, quiet: bool, keep_up: bool, plots: bool = True) -> Path:
    """Build the lab, run its flows for the duration with the live view, write results.

    ``netlab up`` (``keep_up``): Ctrl-C ends the flows early and still writes
    results; afterwards the lab stays up as it was (links, trace replays)
    until ``netlab down``; SIGTERM or an error takes it down. ``netlab run``:
    the lab goes down at the end, and on any exception, Ctrl-C or SIGTERM.
    """
    console = Console(stderr=True, quiet=quiet)
    install_sigterm_handler()
    ownership.install()
    built = time.monotonic()
    lab = lifecycle.up(scenario, backend=backend, subnet=subnet, owner_handles_down=True)
    finished = False
    try:
        console.print(f"[green]up[/green] {lab.name}: {len(lab.plan.hosts)} hosts, "
                      f"{len(lab.plan.links)} links, {lab.backend} shaping, subnet "
                      f"{lab.plan.subnet} ({time.monotonic() - built:.2f} s)")
        for line in choice_lines(lab.backends):
            console.print(line)
        run = start_run(scenario, lab, new_run_dir(out_base, scenario.name), until_down=keep_up)
        crashlog.set_run_dir(run.run_dir)

        def stop_unless_kept() -> None:
            if not keep_up or ownership.down_requested():
                run.stop()

        try:
            with _ctrl_c_keeps_lab(keep_up), ownership.until_taken_down(then=stop_unless_kept):
                if ownership.down_requested():
                    pass  # 'netlab down' asked while the lab was being built
                else:
                    run.runner.start_receivers()
                    zero = run.begin()
                    with LiveView(live_flows(run.runner), scenario.duration_s, console=console,
                                  quiet=quiet, title=scenario.name, backend=lab.backend,
                                  start_monotonic=zero / 1e9, summary=False):
                        run.runner.run(scenario.duration_s)

        except KeyboardInterrupt as exc:
            if not keep_up or isinstance(exc, Terminated):
                raise
            console.print("interrupted: writing the results of what ran")
        if keep_up and not ownership.down_requested():
            run.agent_results = run.agents.stop()  # they served the flows, which have ended
            results = run.results_so_far(final=True)
        else:
            results = run.results([], stop_links=True)
        run_dir = run.run_dir
        if plots:
            from netlab.run.plots import plot_run  # matplotlib only when there is a plot to draw

            plot_run(run_dir)
        width = None if sys.stdout.isatty() else 120
        print_summary(results, run_dir, Console(quiet=quiet, width=width))
        for problem in results["log_problems"]:
            console.print(f"[yellow]warning[/yellow]: log {problem['file']} "
                          f"{problem['problem']}; its figures cover only what was logged")
        finished = True
        return run_dir
    finally:
        if ownership.down_requested():
            _teardown_begins()
            ownership.end_taken_down(lab)
        elif not (finished and keep_up):
            _teardown_begins()
            report = lab.down()
            console.print(f"[green]down[/green] {lab.name}: removed {len(report.removed)} objects")
        else:
            lab.shaping.release()
            console.print(f"lab {lab.name} stays up: 'netlab exec {lab.name} HOST -- CMD', "
                          f"'netlab check {lab.name}', then 'netlab down {lab.name}'")


def live_flows(runner: FlowRunner) -> list[LiveFlow]:
    """What the live view tails: each flow's, as its kind says."""
    return [live for rf in runner.flows
            if (live := kind_of(rf.flow.kind).live_flow(rf)) is not None]
