"""``kind: command``: any unmodified program, run in one host of the lab.

    - {kind: command, id: srv, host: bob, run: "iperf3 -s -1 -p 5201", ready: 5201}
    - {kind: command, id: cli, host: alice, start: 1s, run: "iperf3 -c {bob} -p 5201"}

``run`` is split as a shell splits it (:func:`shlex.split`, no shell runs)
or given as a list. ``{HOST}`` becomes HOST's address as reached from this
host, ``{run_dir}`` the run directory (``{{``/``}}`` are literal braces).
The program runs in the host's namespace with ``cwd`` (default: the
scenario's folder), the caller's environment plus ``NETLAB_LAB``,
``NETLAB_HOST``, ``NETLAB_RUN_DIR`` and ``env``; as its host's user (the one
who invoked sudo, see :mod:`netlab.lab.privileges`) unless ``user:`` names
another (``root`` keeps root's privileges). Its stdout and
stderr are kept in ``RUN_DIR/flows/<id>/``. At ``stop`` (else the run's
end) it gets SIGTERM, then SIGKILL ``grace`` later (default 5 s; docker
compose's ``stop_grace_period``), while every other flow keeps its schedule:
the run does not wait on a program that ignores SIGTERM. ``ready`` (a port
something listens on, or a regular expression its output matches) starts it
before the run's clock, like netlab's own receivers, and the run waits for it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from yaml.nodes import Node, ScalarNode, SequenceNode

from netlab.errors import NetlabError
from netlab.lab import privileges
from netlab.lab.privileges import RunAs
from netlab.run.kinds.base import FlowKind, RunningFlow
from netlab.scenario.fields import (
    Context,
    Custom,
    Entry,
    FieldType,
    MapOf,
    ParsedMap,
    ParsedRecord,
    Text,
    ValueProblem,
)
from netlab.scenario.loader import NotAScalar, scalar_value
from netlab.scenario.model import Flow, Scenario
from netlab.scenario.values import DURATION, HOST_NAME, USER_NAME

if TYPE_CHECKING:
    from netlab.agent.lab import AgentSet
    from netlab.lab.plan import LabPlan
    from netlab.run.flows import Spawner
    from netlab.run.live import LiveFlow
    from netlab.run.results import FlowResult

STOP_GRACE_S = 5.0  # SIGTERM, then SIGKILL this long after (the ``grace`` field's default)
READY_TIMEOUT_S = 15.0
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class Argv(FieldType):
    """A command line: one string split like a shell, or a list of words."""

    expected = "a command line: a string such as \"iperf3 -s\" or a list of words"

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        if isinstance(node, SequenceNode):
            words = []
            for index, item in enumerate(node.value):
                word = self._word(item)
                if word is None:
                    return ctx.problem(item, f"{path}[{index}]", "a word (text or a number)")
                words.append(word)
        else:
            text = self._word(node)
            if text is None:
                return ctx.problem(node, path, self.expected)
            try:
                words = shlex.split(text)
            except ValueError as exc:
                return ctx.problem(node, path, self.expected, hint=f"{exc} (check the quotes)")
        if not words:
            return ctx.problem(node, path, self.expected, "an empty command")
        return tuple(words)

    @staticmethod
    def _word(node: Node) -> str | None:
        if not isinstance(node, ScalarNode):
            return None
        try:
            value = scalar_value(node)
        except NotAScalar:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return None
        return str(value)

    def schema(self) -> dict[str, Any]:
        return {"oneOf": [{"type": "string", "minLength": 1},
                          {"type": "array", "items": {"type": ["string", "number"]},
                           "minItems": 1}],
                "description": self.expected}


def _ready(value: object) -> int | str:
    if isinstance(value, bool):
        raise ValueProblem()
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise ValueProblem(hint="a port is 1-65535")
        return value
    if isinstance(value, str) and value:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueProblem(hint=f"not a regular expression: {exc}") from exc
        return value
    raise ValueProblem()


def _env_value(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueProblem()
    return str(value)


READY = Custom("a port number it listens on (e.g. 5201) or a regular expression its output "
               "prints when ready", _ready,
               {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 65535},
                          {"type": "string", "minLength": 1}]})
ENV = MapOf(Text(expected="an environment variable name", pattern=r"[A-Za-z_][A-Za-z0-9_]*"),
            Custom("a value (text or a number)", _env_value,
                   {"type": ["string", "number"]}),
            "a mapping of environment variable names to values")


@dataclass(frozen=True)
class CommandOptions:
    """A command flow's settings, typed (from the validated ``Flow.options``)."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    user: str | None = None
    ready: int | str | None = None
    grace_s: float = STOP_GRACE_S

    @classmethod
    def of(cls, flow: Flow) -> CommandOptions:
        o = flow.options
        argv = o["run"]
        assert isinstance(argv, tuple)
        env = o.get("env") or {}
        assert isinstance(env, dict)
        ready = o.get("ready")
        assert ready is None or isinstance(ready, int | str)
        cwd = o.get("cwd")
        return cls(tuple(str(w) for w in argv), {str(k): str(v) for k, v in env.items()},
                   str(cwd) if cwd is not None else None,
                   str(o["user"]) if o.get("user") is not None else None, ready,
                   float(grace) if isinstance(grace := o.get("grace"), int | float)
                   else STOP_GRACE_S)


def placeholders(word: str) -> list[str]:
    """The placeholder names in one word (``{bob}`` → ``bob``)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(word) if m.group(1) is not None]


def substitute(word: str, values: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]  # {{ → {, }} → }
        return values[name]

    return _PLACEHOLDER.sub(one, word)


def address_from(plan: LabPlan, here: str, there: str) -> str:
    """``there``'s address as ``here`` reaches it: on the last link of the route."""
    from netlab.lab.plan import egress_path

    target = plan.hosts[there].address
    path = egress_path(plan, here, target)
    if path and path[-1].peer_host == there:
        return str(path[-1].peer_address)
    return str(target)


def resolve_program(word: str, cwd: Path | None) -> str | None:
    """Why ``word`` cannot start (not found, not executable), or None when it can."""
    if "/" in word:
        path = Path(word)
        if not path.is_absolute() and cwd is not None:
            path = cwd / path
        if not path.is_file():
            return f"{str(path)!r}, which does not exist"
        if not os.access(path, os.X_OK):
            return f"{str(path)!r}, which is not executable"
        return None
    if shutil.which(word) is None:
        return f"{word!r}, which is not on PATH"
    return None


def _listening(pid: int, port: int) -> bool:
    """Whether the process's namespace has a TCP listener or a UDP socket on ``port``."""
    for table, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", None), ("udp6", None)):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and int(parts[1].rsplit(":", 1)[1], 16) == port and (
                    state is None or parts[3] == state):
                return True
    return False


@dataclass
class CommandRun(RunningFlow):
    """One command flow while it runs."""

    flow: Flow
    directory: Path
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    who: RunAs | None  # None: the host's user (netlab.lab.privileges)
    ready: int | str | None
    grace_s: float = STOP_GRACE_S
    started: bool = False
    stopped: bool = False
    proc: subprocess.Popen[bytes] | None = None
    started_ns: int | None = None
    ready_ns: int | None = None  # when it said ready (a flow with ``ready``)
    kill_at_ns: int | None = None  # SIGTERM was sent: SIGKILL at this instant
    ended_ns: int | None = None
    exit_code: int | None = None

    @property
    def stdout(self) -> Path:
        return self.directory / "stdout"

    @property
    def stderr(self) -> Path:
        return self.directory / "stderr"

    def prepare(self, spawn: Spawner) -> None:
        if self.ready is not None:
            self._spawn(spawn)
            self._wait_ready()

    def start(self, spawn: Spawner) -> None:
        if self.proc is None:
            self._spawn(spawn)

    def _spawn(self, spawn: Spawner) -> None:
        self.started_ns = time.monotonic_ns()
        try:
            self.proc = spawn(self.argv, self.flow.src, self.stdout, stderr=self.stderr,
                              cwd=self.cwd, env=self.env, who=self.who)
        except (OSError, subprocess.SubprocessError) as exc:
            # validated, but the file may have gone since, or its user cannot reach cwd
            raise NetlabError(f"flow {self.flow.id}: cannot start {self.argv[0]} in {self.cwd}: "
                              f"{exc}", where=f"flows.{self.flow.id}.run",
                              fix="check the program still exists, and that the folder can be "
                                  "entered by the user it runs as (or set user: root)") from exc
        self.started = True

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        pattern = re.compile(self.ready) if isinstance(self.ready, str) else None
        while time.monotonic() < deadline:
            if (isinstance(self.ready, int) and _listening(self.proc.pid, self.ready)) or (
                    pattern is not None and any(
                        pattern.search(p.read_text(errors="replace"))
                        for p in (self.stdout, self.stderr) if p.exists())):
                self.ready_ns = time.monotonic_ns()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise NetlabError(f"flow {self.flow.id} was not ready ({self.ready!r}) within "
                          f"{READY_TIMEOUT_S:g} s (exit code {self.exit_code})",
                          where=f"flows.{self.flow.id}.ready",
                          fix=f"see {self.stderr} and {self.stdout}")

    def request_stop(self) -> None:
        """SIGTERM now, SIGKILL ``grace_s`` later (by ``poll``); never waits."""
        self.stopped = True
        proc = self.proc
        if proc is not None and self.kill_at_ns is None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            self.kill_at_ns = time.monotonic_ns() + round(self.grace_s * 1e9)
        self._ended()

    def stop(self) -> None:
        """SIGTERM (if not sent yet), then wait out the grace and SIGKILL."""
        self.request_stop()
        proc = self.proc
        if proc is None or self.kill_at_ns is None:
            return
        try:
            proc.wait(timeout=max(0.0, (self.kill_at_ns - time.monotonic_ns()) / 1e9))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._ended()

    def reap(self) -> None:
        """Record the exit of a process that has ended (its code, when)."""
        self._ended()

    def poll(self) -> None:
        proc = self.proc
        if (proc is not None and self.kill_at_ns is not None
                and time.monotonic_ns() >= self.kill_at_ns and proc.poll() is None):
            proc.kill()
            proc.wait()
        self._ended()

    def _ended(self) -> None:
        if self.proc is not None and self.ended_ns is None and self.proc.poll() is not None:
            self.ended_ns = time.monotonic_ns()
            self.exit_code = self.proc.returncode

    @property
    def running(self) -> bool:
        if self.proc is None:
            return False
        alive = self.proc.poll() is None
        if not alive:
            self._ended()
        return alive


class CommandKind(FlowKind):
    name = "command"
    two_ended = False
    fields: ClassVar[dict[str, Entry]] = {
        "host": Entry(HOST_NAME, required=True, description="the host the command runs in"),
        "run": Entry(Argv(), required=True,
                     description="the command line, split like a shell (no shell runs) or a "
                                 "list; {HOST} is HOST's address from this host, {run_dir} "
                                 "the run directory"),
        "env": Entry(ENV, description="more environment variables (placeholders allowed)"),
        "cwd": Entry(Text(expected="a directory (relative to the scenario file)"),
                     description="working directory; default: the scenario's folder"),
        "user": Entry(USER_NAME, description="who it runs as: a user name, or root to keep "
                                             "root's privileges; default: the host's user "
                                             "(the sudo caller)"),
        "grace": Entry(DURATION, default_text="5s",
                       description="how long after SIGTERM (at stop) SIGKILL follows"),
        "ready": Entry(READY, description="start it before the run's clock and wait until it "
                                          "listens on this port or prints a line matching "
                                          "this expression (a server)"),
    }

    def check(self, record: ParsedRecord, ends: tuple[str, str] | None, agent_hosts: set[str],
              ctx: Context, hosts: Collection[str]) -> None:
        argv = record.values.get("run")
        if not isinstance(argv, tuple):
            return
        known = set(hosts) | {"run_dir"}
        env = record.get("env")
        words = [*argv, *(v for _, _, _, v in env.entries if isinstance(v, str))] if isinstance(
            env, ParsedMap) else list(argv)
        for word in words:
            for name in placeholders(word):
                if name not in known:
                    ctx.problem(record.nodes["run"], record.path_of("run"),
                                "placeholders naming a host or run_dir",
                                f"{{{name}}}", "write {{ and }} for literal braces")
        if "ready" in record.values and (record.number("start") or 0) > 0:
            ctx.problem(record.nodes["ready"], record.path_of("ready"),
                        "ready only on a command that starts with the run (start: 0s)",
                        f"ready with start: {record.number('start'):g}s",
                        "a command with ready starts before the run's clock; remove start")
        if placeholders(argv[0]):
            return  # known once the lab is planned
        cwd = self._cwd(record.text("cwd"), ctx.base_dir)
        why = resolve_program(argv[0], cwd)
        if why is not None:
            ctx.problem(record.nodes["run"], record.path_of("run"), "a program that can start",
                        why, "install it, fix the path, or give its absolute path")

    @staticmethod
    def _cwd(cwd: str | None, base_dir: Path | None) -> Path | None:
        if cwd is None:
            return base_dir
        path = Path(cwd)
        return path if path.is_absolute() or base_dir is None else base_dir / path

    def running(self, flow: Flow, index: int, plan: LabPlan, scenario: Scenario,
                directory: Path, agents: AgentSet | None) -> RunningFlow:
        options = CommandOptions.of(flow)
        run_dir = directory.parent.parent
        values = {name: address_from(plan, flow.src, name) for name in plan.hosts}
        values["run_dir"] = str(run_dir)
        base_dir = scenario.source.parent if scenario.source else None
        cwd = self._cwd(options.cwd, base_dir) or run_dir
        env = {**os.environ, "NETLAB_LAB": plan.lab, "NETLAB_HOST": flow.src,
               "NETLAB_RUN_DIR": str(run_dir),
               **{k: substitute(v, values) for k, v in options.env.items()}}
        argv = [substitute(word, values) for word in options.argv]
        who = (privileges.resolve(options.user, where=f"flows.{flow.id}.user")
               if options.user is not None else None)
        return CommandRun(flow, directory, argv, env, cwd, who, options.ready, options.grace_s)

    def options(self, record: ParsedRecord) -> dict[str, object]:
        options = super().options(record)
        env = options.get("env")
        if isinstance(env, ParsedMap):
            options["env"] = {key: value for key, _, _, value in env.entries
                              if isinstance(value, str)}
        return options

    def control(self, flow: Flow) -> dict[str, str]:
        return {}

    def results(self, rf: RunningFlow, plan: LabPlan, run_dir: Path, *, start_ns: int,
                end_ns: int, base_dir: Path | None) -> list[FlowResult]:
        from netlab.run.results import FlowResult

        assert isinstance(rf, CommandRun)
        rf.reap()
        flow = rf.flow

        def since_start(ns: int | None) -> float | None:
            return None if ns is None else round((ns - start_ns) / 1e9, 3)

        details: dict[str, Any] = {
            "argv": rf.argv, "exit_code": rf.exit_code, "started_s": since_start(rf.started_ns),
            "ended_s": since_start(rf.ended_ns), "stdout": str(rf.stdout),
            "stderr": str(rf.stderr)}
        if rf.ready is not None:
            details["ready_s"] = since_start(rf.ready_ns)
        metrics: dict[str, Any] = {}
        return [FlowResult(flow.id, flow.kind, flow.src, None, details, metrics,
                           start_s=flow.start_s, stop_s=flow.stop_s, logs=str(rf.directory))]

    def live_flow(self, rf: RunningFlow) -> LiveFlow | None:
        return None


KIND = CommandKind()
