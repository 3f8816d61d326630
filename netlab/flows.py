"""Runs a scenario's RTC and TCP flows as processes inside their hosts.

Each flow gets a directory (``RUN_DIR/flows/<id>``) with one subdirectory
per endpoint (``sender/``, ``receiver/``) for its logs and ``live.jsonl``.  Receivers start first (a
packet sent before the receiver binds is lost and in no feedback), senders
at the flow's ``start``; every process is told its own duration and is
also sent SIGTERM at the flow's ``stop``, so a flow never outlives the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from netlab.agent.lab import AgentSet
from netlab.errors import NetlabError
from netlab.lab import netns
from netlab.lab.plan import LabPlan
from netlab.lab.state import StateJournal
from netlab.scenario.model import Estimator, Flow, Scenario

RTC_BASE_PORT = 5004  # RFC 3551's default RTP port, one per flow above it
TCP_BASE_PORT = 5201
RECEIVER_HEAD_START_S = 0.3
STOP_GRACE_S = 3.0


@dataclass
class FlowProcesses:
    flow: Flow
    directory: Path
    receiver_argv: list[str]
    sender_argv: list[str]

    @property
    def sender_dir(self) -> Path:
        return self.directory / "sender"

    @property
    def receiver_dir(self) -> Path:
        return self.directory / "receiver"

    receiver: subprocess.Popen[bytes] | None = None
    sender: subprocess.Popen[bytes] | None = None
    started: bool = False
    stopped: bool = False

    @property
    def end_s(self) -> float | None:
        return self.flow.stop_s


def _estimator_args(estimator: Estimator, base_dir: Path | None) -> tuple[str, str]:
    """(sender --estimator, receiver --estimator) for one RTC flow."""
    if estimator.kind == "gcc":
        return "gcc", "none"
    if estimator.kind == "fixed":
        return "remb", f"fixed:{estimator.rate_bps}"
    if estimator.kind == "plugin":
        assert estimator.plugin is not None
        path = Path(estimator.plugin)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return "remb", f"plugin:{path}"
    raise NetlabError(
        f"estimator '{estimator}' is not available yet in this netlab version",
        where="flows[].estimator",
        fix="use gcc, fixed:<rate> or plugin:<path>; policy estimators need the agent",
    )


def flow_commands(flow: Flow, index: int, plan: LabPlan, scenario: Scenario,
                  directory: Path, agents: AgentSet | None = None
                  ) -> tuple[list[str], list[str]]:
    """The receiver's and the sender's command lines for one flow."""
    python = [sys.executable, "-m"]
    dst = str(plan.hosts[flow.dst].address)
    end = flow.stop_s if flow.stop_s is not None else scenario.duration_s
    sender_s = max(0.1, end - flow.start_s)
    receiver_s = end + RECEIVER_HEAD_START_S + 1.0  # receivers start with the run
    base_dir = scenario.source.parent if scenario.source else None
    receiver_logs = ["--log-dir", str(directory / "receiver")]
    sender_logs = ["--log-dir", str(directory / "sender")]
    if flow.kind == "rtc":
        port = RTC_BASE_PORT + 2 * index
        estimator = flow.options.get("estimator", Estimator("gcc"))
        assert isinstance(estimator, Estimator)
        receiver_module = "endpoints.rtc.receiver_app"
        if estimator.kind == "policy":
            if agents is None:
                raise NetlabError(f"flow {flow.id} asks for a policy but no agent runs",
                                  where=f"flows[{index}].estimator",
                                  fix=f"add an agent for {flow.dst} under agents:")
            receiver_module, receiver_est = agents.rtc_receiver(flow.dst, index)
            sender_est = "remb"  # the policy's estimate reaches the sender as REMB
        else:
            sender_est, receiver_est = _estimator_args(estimator, base_dir)
        receiver = [*python, receiver_module, "--bind", f"{dst}:{port}",
                    "--duration", f"{receiver_s:.3f}", "--estimator", receiver_est, *receiver_logs]
        sender = [*python, "endpoints.rtc.sender_app", "--dest", f"{dst}:{port}",
                  "--duration", f"{sender_s:.3f}", "--estimator", sender_est,
                  "--seed", str(scenario.seed * 1000 + index), *sender_logs]
        for option, flag in (("initial_rate", "--start-rate"), ("min_rate", "--min-rate"),
                             ("max_rate", "--max-rate")):
            if flow.options.get(option) is not None:
                sender += [flag, str(flow.options[option])]
        if flow.probe_interval_s is not None:  # validated: only with estimator gcc
            sender += ["--probe-interval", str(flow.probe_interval_s)]
        return receiver, sender
    if flow.kind == "tcp":
        port = TCP_BASE_PORT + index
        cc = str(flow.options.get("cc", "cubic"))
        rate = flow.options.get("rate")
        mode = f"rate:{rate}bit" if rate else "bulk"
        receiver = [*python, "endpoints.tcp.receiver_app", "--bind", f"{dst}:{port}",
                    "--duration", f"{receiver_s:.3f}", *receiver_logs]
        sender = [*python, "endpoints.tcp.sender_app", "--dest", f"{dst}:{port}", "--cc", cc,
                  "--mode", mode, "--duration", f"{sender_s:.3f}", *sender_logs]
        if flow.options.get("rate_control") == "policy":
            if agents is None:
                raise NetlabError(f"flow {flow.id} asks for a policy but no agent runs",
                                  where=f"flows[{index}].rate_control",
                                  fix=f"add an agent for {flow.src} under agents:")
            sender += ["--policy", agents.tcp_sender(flow.src, index)]
        return receiver, sender
    raise NetlabError(f"flow kind '{flow.kind}' has no endpoint processes",
                      where=f"flows[{index}].kind", fix="use rtc or tcp (probe runs built in)")


def _spawn(argv: list[str], namespace: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=lambda: netns.enter(namespace), close_fds=True)


@dataclass
class FlowRunner:
    """Starts, stops and reaps every flow's processes on the run's clock."""

    scenario: Scenario
    plan: LabPlan
    journal: StateJournal
    run_dir: Path
    agents: AgentSet | None = None
    flows: list[FlowProcesses] = field(default_factory=list)

    def __post_init__(self) -> None:
        index = 0
        for flow in self.scenario.flows:
            if flow.kind == "probe":
                continue
            directory = self.run_dir / "flows" / flow.id
            for role in ("sender", "receiver"):
                (directory / role).mkdir(parents=True, exist_ok=True)
            receiver, sender = flow_commands(flow, index, self.plan, self.scenario, directory,
                                             self.agents)
            self.flows.append(FlowProcesses(flow, directory, receiver, sender))
            index += 1

    def _start(self, argv: list[str], host: str, directory: Path,
               role: str) -> subprocess.Popen[bytes]:
        proc = _spawn(argv, self.plan.hosts[host].namespace, directory / f"{role}.out")
        self.journal.record("process", str(proc.pid),
                            pid_start=psutil.Process(proc.pid).create_time())
        return proc

    def start_receivers(self) -> None:
        """Every receiver, before any sender (call before ``run``)."""
        for fp in self.flows:
            fp.receiver = self._start(fp.receiver_argv, fp.flow.dst, fp.receiver_dir,
                                      "receiver")
        if self.flows:
            time.sleep(RECEIVER_HEAD_START_S)

    def run(self, duration_s: float, tick: Callable[[float], None] | None = None) -> None:
        """Run every flow on schedule until ``duration_s`` from now."""
        t0 = time.monotonic()
        try:
            while (elapsed := time.monotonic() - t0) < duration_s:
                for fp in self.flows:
                    if not fp.started and elapsed >= fp.flow.start_s:
                        fp.sender = self._start(fp.sender_argv, fp.flow.src, fp.sender_dir,
                                                "sender")
                        fp.started = True
                    if fp.started and not fp.stopped and fp.end_s is not None \
                            and elapsed >= fp.end_s:
                        self._terminate(fp)
                if tick:
                    tick(elapsed / duration_s)
                time.sleep(0.05)
        finally:
            for fp in self.flows:
                self._terminate(fp)

    def _terminate(self, fp: FlowProcesses) -> None:
        """SIGTERM sender then receiver (both flush their logs), then reap."""
        fp.stopped = True
        for proc in (fp.sender, fp.receiver):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (fp.sender, fp.receiver):
            if proc is None:
                continue
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
