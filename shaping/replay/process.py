"""One replayer per link direction, each in its own OS process.

Flows load the CPU; a replayer sharing an interpreter (and its GIL) with
the lab's live view and probes would wake late.  In its own process it can
also take SCHED_FIFO, which lets it preempt the very flows it shapes.  The
process enters the interface's network namespace (``setns``) before opening
its netlink sockets, installs the shaper with the first shape, reports
``ready`` with the start time, and then replays until the schedule ends or
it receives SIGTERM.  It never removes the shaping: the lab owns teardown.

A lab starts its replayers *gated*: each gets ready (about half a second:
interpreter, pyroute2, shaper) and then waits for the run's one time zero on
its stdin (:mod:`labcore.startgate`), which the lab hands to every replayer,
user-space link and flow at once, after the slowest of them is ready.

Protocol on the child's stdout: ``ready <start_ns> <priority>`` once
(``ready gated <priority>`` when it waits for its start), then
``done <reason> applied=<n> skipped=<n> samples=<n>`` at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore.startgate import send_start
from shaping.errors import ShapingError
from shaping.replay.schedule import Change, Schedule
from shaping.spec import LinkShape, QueueLimit

#: The packages' root, first on the child's PYTHONPATH: it starts with ``-P`` (no cwd
#: on sys.path), so an uninstalled checkout must be named.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

READY_TIMEOUT_S = 20.0

#: Lead time between ``ready`` and the first deadline when the caller gives no start.
DEFAULT_LEAD_NS = 50_000_000


# -- the spec that travels to the child ---------------------------------------


def _shape_to_json(shape: LinkShape) -> dict[str, Any]:
    queue = shape.queue
    return {
        "rate_bps": shape.rate_bps,
        "delay_s": shape.delay_s,
        "jitter_s": shape.jitter_s,
        "loss": shape.loss,
        "queue_packets": None if queue is None else queue.packets,
        "queue_bytes": None if queue is None else queue.bytes,
    }


def _shape_from_json(data: dict[str, Any]) -> LinkShape:
    queue = None
    if data["queue_packets"] is not None or data["queue_bytes"] is not None:
        queue = QueueLimit(packets=data["queue_packets"], bytes=data["queue_bytes"])
    return LinkShape(
        rate_bps=data["rate_bps"],
        delay_s=data["delay_s"],
        jitter_s=data["jitter_s"],
        loss=data["loss"],
        queue=queue,
    )


def schedule_to_json(schedule: Schedule) -> dict[str, Any]:
    return {
        "period_s": schedule.period_s,
        "loop": schedule.loop,
        "changes": [[c.t_s, _shape_to_json(c.shape)] for c in schedule.changes],
    }


def schedule_from_json(data: dict[str, Any]) -> Schedule:
    changes = tuple(Change(float(t), _shape_from_json(s)) for t, s in data["changes"])
    return Schedule(changes, float(data["period_s"]), bool(data["loop"]))


@dataclass(frozen=True)
class ReplayerSpec:
    """Everything the replayer process needs; written as JSON beside the log."""

    namespace: str | None
    ifname: str
    strategy: str
    schedule: Schedule
    log_path: Path
    netem: bool
    start_ns: int | None = None
    duration_s: float | None = None
    priority: str = "fifo"
    sample_interval_ns: int = 10_000_000
    lock_memory: bool = False
    gated: bool = False  # the start instant comes on stdin (labcore.startgate)

    def to_json(self) -> str:
        return json.dumps(
            {
                "namespace": self.namespace,
                "ifname": self.ifname,
                "strategy": self.strategy,
                "schedule": schedule_to_json(self.schedule),
                "log_path": str(self.log_path),
                "netem": self.netem,
                "start_ns": self.start_ns,
                "duration_s": self.duration_s,
                "priority": self.priority,
                "sample_interval_ns": self.sample_interval_ns,
                "lock_memory": self.lock_memory,
                "gated": self.gated,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ReplayerSpec:
        data = json.loads(text)
        return cls(
            namespace=data["namespace"],
            ifname=data["ifname"],
            strategy=data["strategy"],
            schedule=schedule_from_json(data["schedule"]),
            log_path=Path(data["log_path"]),
            netem=bool(data["netem"]),
            start_ns=data["start_ns"],
            duration_s=data["duration_s"],
            priority=data["priority"],
            sample_interval_ns=int(data["sample_interval_ns"]),
            lock_memory=bool(data["lock_memory"]),
            gated=bool(data.get("gated", False)),
        )


def spec_path_for(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".spec.json")


def stderr_path_for(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".stderr")


# -- the parent's side -------------------------------------------------------


@dataclass(frozen=True)
class ReplayDone:
    """The child's final report."""

    reason: str
    applied: int
    skipped: int
    samples: int
    returncode: int


class ReplayerHandle:
    """A running replayer process."""

    def __init__(self, spec: ReplayerSpec, proc: subprocess.Popen[bytes], start_ns: int,
                 priority: str) -> None:
        self.spec = spec
        self.pid = proc.pid
        self.start_ns = start_ns  # CLOCK_MONOTONIC time of deadline 0 (0: gated, not given yet)
        self.priority = priority  # what the process obtained: fifo | nice | none (+ extras)
        self.log_path = spec.log_path
        self._proc = proc
        self.done: ReplayDone | None = None

    def running(self) -> bool:
        return self._proc.poll() is None

    def start_at(self, start_ns: int) -> None:
        """Give a gated replayer its start instant (CLOCK_MONOTONIC); once."""
        stdin = self._proc.stdin
        if not self.spec.gated or stdin is None or stdin.closed:
            raise ShapingError("this replayer is not waiting for a start",
                               where=f"replayer pid {self.pid} ({self.spec.ifname})",
                               fix="start it with start_replayer(..., gated=True) and give "
                                   "its start once")
        try:
            send_start(stdin, start_ns)
        except BrokenPipeError:
            raise _start_error(self.spec, stderr_path_for(self.log_path),
                               "it exited before its start", self._proc.poll()) from None
        self.start_ns = start_ns

    def wait(self, timeout: float | None = None) -> ReplayDone:
        """Wait for a non-looping (or time-bounded) replay to end by itself."""
        self._proc.wait(timeout)
        return self._collect()

    def stop(self, timeout: float = 5.0) -> ReplayDone:
        """SIGTERM (the loop ends at its next wake-up, log flushed), then SIGKILL; idempotent."""
        if self.done is not None:
            return self.done
        proc = self._proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return self._collect()

    def _collect(self) -> ReplayDone:
        if self.done is not None:
            return self.done
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()

        text = b""
        if self._proc.stdout is not None:
            text = self._proc.stdout.read() or b""
            self._proc.stdout.close()
        done = ReplayDone("killed", 0, 0, 0, self._proc.returncode)
        for line in text.decode(errors="replace").splitlines():
            words = line.split()
            if words and words[0] == "done":
                fields = dict(w.split("=", 1) for w in words[2:] if "=" in w)
                done = ReplayDone(words[1], int(fields.get("applied", 0)),
                                  int(fields.get("skipped", 0)), int(fields.get("samples", 0)),
                                  self._proc.returncode)
        self.done = done
        return done


def start_replayer(
    namespace: str | None,
    ifname: str,
    strategy: str,
    schedule: Schedule,
    loop: bool | None,
    log_path: Path,
    *,
    netem: bool | None = None,
    start_ns: int | None = None,
    duration_s: float | None = None,
    priority: str = "fifo",
    sample_interval_ns: int = 10_000_000,
    lock_memory: bool = False,
    gated: bool = False,
) -> ReplayerHandle:
    """Start replaying ``schedule`` on the egress of ``ifname`` in ``namespace``.

    ``loop`` overrides the schedule's own looping (None keeps it).
    ``netem``: whether to allow a netem leaf; None means "if the schedule
    needs one" (the kernel then says clearly if sch_netem is missing).
    ``start_ns`` (CLOCK_MONOTONIC) lets several replayers share one epoch;
    by default the replay starts 50 ms after the process is ready.
    ``duration_s`` ends the replay that long after the start.  Returns once
    the shaper is installed and the start time is known; ``gated``: once it
    is ready, and the replay starts at ``handle.start_at(ns)``.
    """
    if loop is not None and loop != schedule.loop:
        schedule = Schedule(schedule.changes, schedule.period_s, loop)
    if netem is None:
        netem = any(c.shape.needs_netem for c in schedule.changes)
    spec = ReplayerSpec(namespace, ifname, strategy, schedule, log_path, netem,
                        None if gated else start_ns, duration_s, priority, sample_interval_ns,
                        lock_memory, gated)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    spec_file = spec_path_for(log_path)
    spec_file.write_text(spec.to_json())
    err_path = stderr_path_for(log_path)
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "shaping.replay", "--spec", str(spec_file)],
            cwd=spec_file.parent,  # -P and a fixed cwd: the caller's cwd never shadows shaping
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                filter(None, (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH"))))},
            stdin=subprocess.PIPE if gated else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,  # a Ctrl-C for the lab does not cut the replay mid-teardown
            close_fds=True,
        )
    assert proc.stdout is not None
    line = _read_line(proc, READY_TIMEOUT_S)
    words = line.split()
    if len(words) < 3 or words[0] != "ready" or not (words[1].isdigit() or words[1] == "gated"):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        if proc.stdin is not None:
            proc.stdin.close()
        raise _start_error(spec, err_path, f"it said {line!r}", proc.returncode)
    return ReplayerHandle(spec, proc, 0 if words[1] == "gated" else int(words[1]), words[2])


def _read_line(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return data.decode(errors="replace")
        chunk = os.read(fd, 1)  # byte by byte: the rest of stdout is read at the end
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def _start_error(spec: ReplayerSpec, err_path: Path, said: str, code: int | None) -> ShapingError:
    try:
        tail = err_path.read_text(errors="replace").strip().splitlines()[-6:]
    except OSError:
        tail = []
    detail = " | ".join(tail) if tail else f"{said} (exit status {code})"
    where = f"interface {spec.ifname}"
    if spec.namespace:
        where += f" in namespace {spec.namespace}"
    return ShapingError(
        f"the trace replayer did not start: {detail}",
        where=f"{where} (log {err_path})",
        fix="check that the interface exists in that namespace and that you run as root",
    )
