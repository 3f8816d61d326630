"""Agents in a lab: one process per host named in the scenario's ``agents:``,
started inside that host's namespace, serving on a socket in the lab's run
directory, and summarised into results ``agents[]`` when the run ends.

The flows find their agent through :meth:`AgentSet.rtc_receiver`, which
gives the receiver module, ``--estimator`` value and poll interval for a
policy-driven RTC flow (the checkpoint's own step unless the flow sets
``decision_interval``: :mod:`netlab.agent.interval`), and
:meth:`AgentSet.tcp_sender`, the sender's ``--policy`` value for a TCP flow
whose pacing rate the policy sets. Every process is journaled
before anything else happens, so ``netlab down`` removes it even after a
crash.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from endpoints.agent_rtc import HISTORY_CONTRACT, STATE_SIZE, RtcContract
from netlab import paths
from netlab.agent.interval import DecisionTiming, decision_timing
from netlab.agent.stats import percentiles
from netlab.errors import NetlabError
from netlab.lab import netns
from netlab.lab.plan import LabPlan
from netlab.lab.privileges import child_env, python_argv
from netlab.lab.state import StateJournal
from netlab.scenario.model import Agent, Scenario

READY_TIMEOUT_S = 60.0  # importing torch alone takes seconds on a busy 2-core machine
STOP_GRACE_S = 5.0
CLIENT_SUMMARY = "agent_client.json"  # endpoints.agent_rtc.CLIENT_SUMMARY
RTC_POLICY_RECEIVER = "endpoints.agent_rtc"
TCP_POLICY_INTERVAL = "100ms"  # endpoints.agent_tcp.DEFAULT_INTERVAL_S
INITIAL_TCP_CHECKPOINT = "initial-tcp-mi5.pth"


@dataclass
class RunningAgent:
    spec: Agent
    namespace: str
    socket: Path
    control: Path
    directory: Path
    checkpoint: str | None
    proc: subprocess.Popen[bytes]
    exited_early: bool = False
    #: what the agent said it serves once ready (contract, step_ms, window_ms, device)
    serving: dict[str, Any] = field(default_factory=dict)

    @property
    def stats_path(self) -> Path:
        return self.directory / "agent_stats.json"


@dataclass
class AgentSet:
    run_dir: Path
    agents: dict[str, RunningAgent] = field(default_factory=dict)
    _results: list[dict[str, Any]] | None = None

    def socket_for(self, host: str) -> Path:
        return self.agents[host].socket

    def rtc_receiver(self, host: str, flow_index: int, decision_interval_s: float | None = None
                     ) -> tuple[str, str, DecisionTiming]:
        """(receiver module, ``--estimator`` value, when it decides) for an RTC flow
        received on ``host``; ``decision_interval_s`` None: the checkpoint's step."""
        agent = self.agents.get(host)
        if agent is None:
            raise NetlabError(f"no agent runs on {host!r} to serve the policy",
                              where=f"agents.{host}", fix=f"add agents: {{{host}: {{...}}}}")
        fallback = "gcc" if agent.spec.fallback == "gcc" else "keep"
        deadline_us = max(1, round(agent.spec.deadline_s * 1e6))
        timing = decision_timing(decision_interval_s, _number(agent.serving.get("step_ms")),
                                 _number(agent.serving.get("window_ms")))
        window_us = max(1, round(timing.window_ms * 1e3))
        obs_size = agent.serving.get("obs_size")
        contract = (RtcContract(HISTORY_CONTRACT, obs_size // STATE_SIZE)
                    if agent.serving.get("contract") == HISTORY_CONTRACT
                    and isinstance(obs_size, int) else RtcContract())
        return RTC_POLICY_RECEIVER, (f"policy:{agent.socket}?deadline={deadline_us}us"
                                     f"&fallback={fallback}&flow={flow_index + 1}"
                                     f"&window={window_us}us{contract.receiver_options()}"
                                     ), timing

    def tcp_sender(self, host: str, flow_index: int) -> str:
        """The TCP sender's ``--policy`` value for a flow sent from ``host``. The
        rule-based fallback of TCP is the kernel's congestion control, so ``gcc`` and
        ``kernel`` both hand the rate back to it on a miss; ``keep`` keeps the last one."""
        agent = self.agents.get(host)
        if agent is None:
            raise NetlabError(f"no agent runs on {host!r} to serve the policy",
                              where=f"agents.{host}", fix=f"add agents: {{{host}: {{...}}}}")
        fallback = "keep" if agent.spec.fallback == "keep" else "kernel"
        deadline_us = max(1, round(agent.spec.deadline_s * 1e6))
        return (f"{agent.socket}?deadline={deadline_us}us&fallback={fallback}"
                f"&interval={TCP_POLICY_INTERVAL}&flow={flow_index + 1}")

    def alive(self, host: str) -> bool:
        return self.agents[host].proc.poll() is None

    def stop(self) -> list[dict[str, Any]]:
        """Stop every agent and return the results contract's ``agents[]`` entries
        (call after the flows have stopped, so their client summaries exist). Safe to
        call again (e.g. from a ``finally``): the first answer is kept."""
        if self._results is not None:
            return self._results
        for agent in self.agents.values():
            if agent.proc.poll() is None:
                agent.proc.send_signal(signal.SIGTERM)
            else:
                agent.exited_early = True
        for agent in self.agents.values():
            try:
                agent.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.kill(agent.proc.pid, signal.SIGKILL)
                agent.proc.wait()
        self._results = [self._result(agent) for agent in self.agents.values()]
        return self._results

    def _result(self, agent: RunningAgent) -> dict[str, Any]:
        clients = _client_summaries(self.run_dir, agent.socket)
        samples = [x for c in clients for x in c.get("latency_us", [])]
        server: dict[str, Any] = {}
        if agent.stats_path.is_file():
            server = json.loads(agent.stats_path.read_text())
        return {
            "host": agent.spec.host,
            "decisions": sum(int(c.get("decisions", 0)) for c in clients),
            "misses": sum(int(c.get("misses", 0)) for c in clients),
            "fallback_s": round(sum(float(c.get("fallback_s", 0.0)) for c in clients), 6),
            "latency_us": percentiles(samples),
            "checkpoint": agent.checkpoint,
            "deadline_ms": agent.spec.deadline_s * 1e3,
            "fallback": agent.spec.fallback,
            "policy": server.get("policy"),
            "device": server.get("device") or agent.serving.get("device"),
            "agent_exited_early": agent.exited_early,
            "server": {k: server.get(k) for k in ("decisions", "batches", "max_batch",
                                                  "server_misses", "errors", "warmups",
                                                  "reloads", "latency_us", "breakdown_us",
                                                  "gc_collections")}
            if server else None,
            "flows": [{"flow": c["flow_dir"], "decisions": c.get("decisions"),
                       "misses": c.get("misses"), "fallback_s": c.get("fallback_s"),
                       "late_replies": c.get("late_replies"),
                       "wait_priority": c.get("wait_priority"),
                       "decision_interval_ms": c.get("decision_interval_ms"),
                       "window_ms": c.get("window_ms"),
                       "contract": c.get("contract"), "history": c.get("history"),
                       "latency_us": percentiles(c.get("latency_us", []))} for c in clients],
        }


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _serving(control: Path) -> dict[str, Any]:
    """What a ready agent serves (its control API's /health); {} if it cannot say."""
    from netlab.agent.client import ControlClient

    try:
        return ControlClient(control, timeout_s=10).health()
    except (OSError, ValueError, RuntimeError):
        return {}


def _client_summaries(run_dir: Path, socket_path: Path) -> list[dict[str, Any]]:
    found = []
    flows_dir = run_dir / "flows"
    for path in sorted(flows_dir.glob(f"**/{CLIENT_SUMMARY}")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("socket") == str(socket_path):
            data["flow_dir"] = path.relative_to(flows_dir).parts[0]  # flows/<id>/receiver/
            found.append(data)
    return found


def agent_command(agent: Agent, socket_path: Path, control: Path, directory: Path,
                  checkpoint: str | None, seed: int, explore: bool = False) -> list[str]:
    argv = [*python_argv("netlab.agent"), "--socket", str(socket_path),
            "--control", str(control), "--deadline", f"{agent.deadline_s}s",
            "--device", agent.device,
            "--stats-out", str(directory / "agent_stats.json"), "--seed", str(seed)]
    if checkpoint is not None:
        argv += ["--checkpoint", checkpoint]
    if explore:
        argv.append("--explore")  # fine-tuning samples actions (netlab.learning.labs)
    if agent.poll_share > 0:
        argv += ["--poll-budget", f"{agent.poll_share:g}"]
    return argv


def _resolve(checkpoint: str | None, scenario: Scenario, host: str) -> str | None:
    if checkpoint is None:
        return None
    path = Path(checkpoint).expanduser()
    if not path.is_absolute() and scenario.source is not None:
        path = scenario.source.parent / path
    if not path.is_file():
        raise NetlabError("agent checkpoint does not exist", where=f"agents.{host}.checkpoint "
                          f"({path})", fix="give a path relative to the scenario file")
    # Absolute: the agent runs in its own working directory, not the caller's.
    return str(path.absolute())


def _serves_tcp_policy(scenario: Scenario, host: str) -> bool:
    return any(flow.kind == "tcp" and flow.src == host
               and flow.options.get("rate_control") == "policy" for flow in scenario.flows)


def _initial_tcp_checkpoint(directory: Path, seed: int) -> str:
    """An agent without a checkpoint serves a fresh policy; the server's own default is
    an RTC one, so a TCP sender's agent gets a fresh ``tcp-mi5`` policy written here."""
    import torch  # only for this case: the lab itself does not need torch

    from netlab.agent.policies.tcp_mi5 import initial_checkpoint

    path = directory / INITIAL_TCP_CHECKPOINT
    torch.save(initial_checkpoint(seed), path)
    return str(path)


def _enter(namespace: str) -> Callable[[], None]:
    def enter() -> None:
        netns.enter(namespace)
    return enter


def _ready(socket_path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(str(socket_path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def start_agents(scenario: Scenario, plan: LabPlan, journal: StateJournal, run_dir: Path,
                 *, ready_timeout_s: float = READY_TIMEOUT_S, explore: bool = False) -> AgentSet:
    """Start every scenario agent in its host and wait until each one serves."""
    agent_set = AgentSet(run_dir)
    if not scenario.agents:
        return agent_set
    sockets = paths.lab_dir(plan.lab) / "agents"
    sockets.mkdir(parents=True, exist_ok=True)
    try:
        for index, spec in enumerate(scenario.agents):
            checkpoint = _resolve(spec.checkpoint, scenario, spec.host)
            directory = run_dir / "agents" / spec.host
            directory.mkdir(parents=True, exist_ok=True)
            if checkpoint is None and _serves_tcp_policy(scenario, spec.host):
                checkpoint = _initial_tcp_checkpoint(directory, scenario.seed * 1000 + index)
            socket_path, control = sockets / f"{spec.host}.sock", sockets / f"{spec.host}.ctl"
            for path in (socket_path, control):
                journal.record("file", str(path))
            namespace = plan.hosts[spec.host].namespace
            argv = agent_command(spec, socket_path, control, directory, checkpoint,
                                 scenario.seed * 1000 + index, explore)
            with open(directory / "agent.out", "ab") as out:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        preexec_fn=_enter(namespace), cwd=directory,
                                        env=child_env(), close_fds=True)
            journal.record("process", str(proc.pid),
                           pid_start=psutil.Process(proc.pid).create_time())
            agent_set.agents[spec.host] = RunningAgent(spec, namespace, socket_path, control,
                                                       directory, checkpoint, proc)
        deadline = time.monotonic() + ready_timeout_s
        for host, agent in agent_set.agents.items():
            while not _ready(agent.socket):
                if agent.proc.poll() is not None or time.monotonic() > deadline:
                    tail = (agent.directory / "agent.out").read_text(errors="replace")[-600:]
                    raise NetlabError(f"the agent on {host} did not start: {tail.strip()}",
                                      where=f"agents.{host}",
                                      fix="run `netlab agent inspect CHECKPOINT` to check the "
                                          "checkpoint; see agent.out in the run directory")
                time.sleep(0.05)
            agent.serving = _serving(agent.control)
            note = (agent.serving.get("device") or {}).get("note")
            if note:  # e.g. cuda asked for on a machine without a GPU
                print(f"agent on {host}: {note}", file=sys.stderr, flush=True)
    except BaseException:
        agent_set.stop()
        raise
    return agent_set
