"""Runs a scenario's flows inside their hosts, on the run's clock.

Each flow gets a directory (``RUN_DIR/flows/<id>``). What runs there is its
kind's (:mod:`netlab.run.kinds`): a receiver/sender process pair
(:class:`FlowProcesses`), a user's command, or the link probe. Receivers
start first and the runner waits until each says it is ready (``ready.json``:
socket bound, plugins and models loaded; :mod:`netlab.readiness`), since a
packet sent before that is lost. netlab's own senders start with them and
wait too (``--wait-start``): the run's time zero is given to every sender
with the flow's ``start`` added (:meth:`FlowRunner.release`), so a flow
starts at its time on the traces' clock, not an interpreter start-up later;
a command flow is started at its ``start``. Every flow is stopped at its
``stop`` or at the run's end, so none outlives the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from labcore import priority
from labcore.startgate import send_start, sleep_until_ns
from netlab.agent.lab import AgentSet
from netlab.errors import NetlabError
from netlab.lab import privileges
from netlab.lab.plan import LabPlan
from netlab.lab.state import StateJournal
from netlab.readiness import Waiting, wait_ready
from netlab.run.kinds import kind_of
from netlab.run.kinds.base import RECEIVER_HEAD_START_S, RunningFlow
from netlab.scenario.model import Flow, Scenario

__all__ = ["RECEIVER_HEAD_START_S", "FlowProcesses", "FlowRunner", "RunningFlow",
           "flow_commands"]

STOP_GRACE_S = 3.0
#: How long before the run's zero it is handed out: time for every waiting
#: process (replayers, links, senders) to read it and sleep until it.
ZERO_LEAD_S = 0.1
#: The runner's loop wakes at least this often (progress ticks, flows' ends).
TICK_S = 0.05


@dataclass
class Spawner:
    """Starts a process inside a host as that host's user (see
    :mod:`netlab.lab.privileges`) and journals it (so ``down`` can end it)."""

    plan: LabPlan
    journal: StateJournal
    users: dict[str, privileges.RunAs] = field(default_factory=dict)

    def user_of(self, host: str) -> privileges.RunAs:
        if host not in self.users:
            self.users[host] = privileges.resolve(None, where=f"hosts.{host}.user")
        return self.users[host]

    def __call__(self, argv: list[str], host: str, log: Path, *, stderr: Path | None = None,
                 cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 who: privileges.RunAs | None = None,
                 stdin_pipe: bool = False) -> subprocess.Popen[bytes]:
        """``cwd`` defaults to ``log``'s folder, which becomes the user's;
        ``stdin_pipe``: the child's stdin is a pipe (its start instant comes there)."""
        who = who or self.user_of(host)
        if "--cc" in argv:
            who = privileges.for_tcp_sender(who, argv[argv.index("--cc") + 1])
        workdir = cwd or log.parent
        privileges.give_path(log.parent, who)
        for path in _reads(argv):  # an agent's socket: connecting needs write access
            if path.is_socket():
                privileges.give_path(path, who)
                # its decision waits may climb to their rung (endpoints.agent_client)
                who = who.with_rtprio(priority.DECISION_WAIT.fifo or 0)
        program = shutil.which(argv[0])  # a command flow's program may lie in a closed home
        reads = [*_reads(argv), *([Path(program)] if program else [])]
        preexec = privileges.enter_as(self.plan.hosts[host].namespace, who, workdir, reads)
        with open(log, "ab") as out, open(stderr or log, "ab") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_pipe else
                                    subprocess.DEVNULL, stdout=out, stderr=err,
                                    preexec_fn=preexec, close_fds=True,
                                    env=privileges.child_env(env))
        self.journal.record("process", str(proc.pid),
                            pid_start=psutil.Process(proc.pid).create_time())
        return proc


def terminate(procs: list[subprocess.Popen[bytes] | None], grace_s: float = STOP_GRACE_S
              ) -> None:
    """SIGTERM each (in order: they flush their logs), SIGKILL after ``grace_s``, reap."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        if proc is None:
            continue
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class FlowProcesses(RunningFlow):
    """A two-ended flow: a receiver process on ``to`` and a sender on ``from``.

    ``gated``: the sender takes ``--wait-start``: it is started with the
    receiver and sends from the instant :meth:`release` gives it."""

    flow: Flow
    directory: Path
    receiver_argv: list[str]
    sender_argv: list[str]
    receiver: subprocess.Popen[bytes] | None = None
    sender: subprocess.Popen[bytes] | None = None
    started: bool = False
    stopped: bool = False
    ready_ns: int | None = None  # the receiver said ready (CLOCK_MONOTONIC)
    started_ns: int | None = None  # the sender started (gated: the instant it was given)
    gated: bool = False

    @property
    def sender_dir(self) -> Path:
        return self.directory / "sender"

    @property
    def receiver_dir(self) -> Path:
        return self.directory / "receiver"

    def prepare(self, spawn: Spawner) -> None:
        self.receiver = spawn(self.receiver_argv, self.flow.dst, self.receiver_dir / "receiver.out")
        if self.gated:
            self.sender = spawn(self.sender_argv, self.flow.src, self.sender_dir / "sender.out",
                                stdin_pipe=True)

    def waiting(self) -> list[Waiting]:
        out = [Waiting(self.flow.id, self.receiver_dir, self.receiver,
                       self.receiver_dir / "receiver.out", role="receiver")]
        if self.gated:
            out.append(Waiting(f"{self.flow.id} (sender)", self.sender_dir, self.sender,
                               self.sender_dir / "sender.out", role="sender"))
        return out

    def release(self, zero_ns: int) -> None:
        if not self.gated or self.sender is None or self.sender.stdin is None:
            return
        at_ns = zero_ns + round(self.flow.start_s * 1e9)
        try:
            send_start(self.sender.stdin, at_ns)
        except BrokenPipeError:
            raise NetlabError(f"flow {self.flow.id}: the sender exited before its start "
                              f"(status {self.sender.poll()})",
                              where=str(self.sender_dir / "sender.out"),
                              fix="read the sender's output there") from None
        self.started_ns = at_ns

    def start(self, spawn: Spawner) -> None:
        if not self.gated:  # a gated sender was released with its start instant
            self.started_ns = time.monotonic_ns()
            self.sender = spawn(self.sender_argv, self.flow.src, self.sender_dir / "sender.out")
        self.started = True

    def stop(self) -> None:
        """SIGTERM sender then receiver (both flush their logs), then reap."""
        self.stopped = True
        terminate([self.sender, self.receiver])
        if self.sender is not None and self.sender.stdin is not None:
            self.sender.stdin.close()


    @property
    def running(self) -> bool:
        return (self.started and not self.stopped and self.sender is not None
                and self.sender.poll() is None)


def flow_commands(flow: Flow, index: int, plan: LabPlan, scenario: Scenario,
                  directory: Path, agents: AgentSet | None = None
                  ) -> tuple[list[str], list[str]]:
    """The receiver's and the sender's command lines for one flow (its kind's)."""
    commands = kind_of(flow.kind).commands(flow, index, plan, scenario, directory, agents)
    return commands.receiver, commands.sender


def _reads(argv: list[str]) -> list[Path]:
    """Files a child reads beyond its code: a plugin, an agent's socket."""
    found = []
    for arg in argv:
        for prefix in ("plugin:", "policy:"):
            if arg.startswith(prefix):
                found.append(Path(arg.removeprefix(prefix).split("?", 1)[0]))
    if "--policy" in argv:
        found.append(Path(argv[argv.index("--policy") + 1].split("?", 1)[0]))
    return found


@dataclass
class FlowRunner:
    """Starts, stops and reaps every flow on the run's clock."""

    scenario: Scenario
    plan: LabPlan
    journal: StateJournal
    run_dir: Path
    agents: AgentSet | None = None
    flows: list[RunningFlow] = field(default_factory=list)
    zero_ns: int | None = None  # the run's time zero, once released


    def __post_init__(self) -> None:
        users = {h.name: privileges.resolve(h.user, where=f"hosts.{h.name}.user")
                 for h in self.scenario.hosts}
        self.spawn = Spawner(self.plan, self.journal, users)
        for index, flow in enumerate(self.scenario.flows):
            directory = self.run_dir / "flows" / flow.id
            directory.mkdir(parents=True, exist_ok=True)
            running = kind_of(flow.kind).running(flow, index, self.plan, self.scenario,
                                                 directory, self.agents)
            if isinstance(running, FlowProcesses):  # a plugin its user cannot read: now
                for path in _reads(running.receiver_argv):
                    privileges.require_readable(path, self.spawn.user_of(flow.dst),
                                                f"flows[{index}].estimator ({flow.id})")
            self.flows.append(running)

    def start_receivers(self) -> None:
        """Whatever must run before the run's time zero, then wait until every
        receiving side, and every sender waiting for its start, is ready (call
        before ``release``/``run``).

        One that exits or is not ready in time fails the run with what it
        was doing (NetlabError); the caller's clean-up stops the others."""
        for rf in self.flows:
            rf.prepare(self.spawn)
        waiting = [w for rf in self.flows for w in rf.waiting()]
        ready = wait_ready(waiting)
        for rf in self.flows:
            if isinstance(rf, FlowProcesses):
                rf.ready_ns = ready.get(rf.flow.id)

    def release(self, zero_ns: int) -> None:
        """The run's time zero (CLOCK_MONOTONIC, still ahead): every waiting sender
        gets it with its flow's ``start`` added, and ``run`` counts from it."""
        self.zero_ns = zero_ns
        for rf in self.flows:
            rf.release(zero_ns)

    def run(self, duration_s: float, tick: Callable[[float], None] | None = None) -> None:
        """Run every flow on schedule for ``duration_s`` from the run's time zero
        (given by ``release``; else now, plus the lead to hand it out), then stop them all.

        The loop sleeps until the next flow start or stop is due (or a tick), so
        a command flow starts at its time, not up to a tick later."""
        if self.zero_ns is None:
            self.release(time.monotonic_ns() + round(ZERO_LEAD_S * 1e9))
        assert self.zero_ns is not None
        zero = self.zero_ns
        try:
            sleep_until_ns(zero)
            while (elapsed := (time.monotonic_ns() - zero) / 1e9) < duration_s:
                self.step(elapsed)
                if tick:
                    tick(elapsed / duration_s)
                wake = min(duration_s, elapsed + TICK_S, *self._due_after(elapsed))
                time.sleep(max(0.0, zero / 1e9 + wake - time.monotonic_ns() / 1e9))
        finally:
            self.stop_all()

    def _due_after(self, elapsed: float) -> list[float]:
        """Times (s from the zero) of the flow starts and stops still to come."""
        due = []
        for rf in self.flows:
            if not rf.started and not rf.stopped and rf.flow.start_s > elapsed:
                due.append(rf.flow.start_s)
            if not rf.stopped and rf.end_s is not None and rf.end_s > elapsed:
                due.append(rf.end_s)
        return due

    def step(self, elapsed: float) -> None:
        """Start and stop what is due ``elapsed`` seconds into the run."""
        for rf in self.flows:
            rf.poll()
            if not rf.started and not rf.stopped and elapsed >= rf.flow.start_s:
                rf.start(self.spawn)
            if rf.started and not rf.stopped and rf.end_s is not None and elapsed >= rf.end_s:
                rf.request_stop()

    def stop_all(self) -> None:
        """Ask every flow to stop at once, then reap each (their grace periods
        run side by side, not one after another)."""
        for rf in self.flows:
            rf.stopped = rf.stopped or not rf.started
        for rf in self.flows:
            rf.request_stop()
        for rf in self.flows:
            rf.stop()
