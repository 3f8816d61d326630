"""Episodes in real labs, K at a time on one machine.

One episode is one run of one environment (:mod:`netlab.learning.scenario_set`):
build the lab, start the receiver's agent (sampling actions when
``explore``), run the RTC flow for the environment's duration, *drain the
agent's transitions before it stops*, compute results (score, fidelity)
and tear the lab down. It is :func:`netlab.run.session.run_session` with those
hooks and without the live view.

Each episode runs in its own process (``python -m netlab.learning.labs
SPEC.json``): labs share nothing, the GIL does not serialise K of them, and
a child is sent SIGTERM if the learner dies (``PR_SET_PDEATHSIG``), which
tears its lab down. While episodes run, :class:`LabPool` can drain their
agents and push new weights into them over the control sockets (what an
asynchronous learner does); rows drained early plus the child's final drain
are the episode's complete record.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from labcore.jsonfile import write_json_atomic
from netlab.agent.client import ControlClient
from netlab.agent.transitions import from_npy, to_npy
from netlab.errors import NetlabError
from netlab.lab.privileges import child_env, python_argv
from netlab.learning.scenario_file import ScenarioFile, with_controller
from netlab.learning.scenario_set import CALL_FLOW, EnvConfig, scenario_for

EPISODE_FILE = "episode.json"
SPEC_FILE = "spec.json"
TRANSITIONS_FILE = "transitions.npy"
CONTROL_FILE = "control.json"
PR_SET_PDEATHSIG = 1
#: How long an episode waits for a same-named lab that a dying episode is
#: still tearing down (teardown of a two-host lab takes well under a second).
PREDECESSOR_WAIT_S = 20.0


#: An episode's environment: a Genet-style configuration, or a user's scenario file.
Environment = EnvConfig | ScenarioFile


def environment_from_dict(data: dict[str, Any]) -> Environment:
    if "scenario_file" in data:
        return ScenarioFile.from_dict(data)
    return EnvConfig.from_dict(data)


@dataclass
class EpisodeSpec:
    """What one episode runs; JSON round-trips for the child process."""

    env: Environment
    directory: str
    lab: str = "ftlab"  # LabPool(lab_prefix=...) replaces it with a free slot's name
    estimator: str = "policy"  # or a baseline: gcc
    checkpoint: str | None = None
    explore: bool = False
    deadline_s: float = 0.02
    fallback: str = "keep"
    backend: str | None = None
    plots: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["env"] = self.env.as_dict()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EpisodeSpec:
        values = dict(data)
        values["env"] = environment_from_dict(values["env"])
        return cls(**values)


@dataclass
class EpisodeResult:
    """What the learner and the evaluator read back from one episode."""

    spec: EpisodeSpec
    score: float | None = None  # OpenNetLab network score of the controlled flows (0–70)
    faithful: bool | None = None
    run_dir: str | None = None
    agent: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    error: str | None = None
    #: The run's time zero (its traces', CLOCK_MONOTONIC ns of the machine it ran on).
    trace_epoch_ns: int | None = None
    node: str | None = None  # the Ray node that ran it (None: this machine)
    transitions: npt.NDArray[Any] | None = None  # not in episode.json (.npy beside it)
    #: What the run's fidelity report blamed on the machine itself (empty: nothing).
    machine_causes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.to_json(), "score": self.score, "faithful": self.faithful,
                "run_dir": self.run_dir, "agent": self.agent, "metrics": self.metrics,
                "wall_s": self.wall_s, "error": self.error,
                "trace_epoch_ns": self.trace_epoch_ns, "node": self.node,
                "machine_causes": self.machine_causes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EpisodeResult:
        epoch = data.get("trace_epoch_ns")
        return cls(EpisodeSpec.from_json(data["spec"]), data.get("score"),
                   data.get("faithful"), data.get("run_dir"), data.get("agent"),
                   data.get("metrics") or {}, float(data.get("wall_s", 0.0)), data.get("error"),
                   None if epoch is None else int(epoch), data.get("node"),
                   machine_causes=list(data.get("machine_causes") or []))


#: An episode's metric vector, over the flows its controller drove: the mean
#: over those flows, except ``freezes`` and ``recv_rate_bps`` (their sums).
#: ``score`` is OpenNetLab's network score, ``capacity_score`` the
#: capacity-normalised one (endpoints.metrics.objectives).
EPISODE_METRICS = ("score", "capacity_score", "utilization", "recv_rate_bps", "delay_p50_ms",
                   "delay_p95_ms", "frame_delay_p95_ms", "freezes", "loss")
SUMMED_METRICS = ("freezes", "recv_rate_bps")


def _flow_vector(flow: dict[str, Any]) -> dict[str, float | None]:
    metrics, scores = flow.get("metrics") or {}, flow.get("scores") or {}
    vector = {k: metrics.get(k) for k in EPISODE_METRICS}
    vector["score"], vector["capacity_score"] = scores.get("network"), scores.get("capacity")
    return vector


def episode_metrics(results: dict[str, Any], flow_ids: Sequence[str]
                    ) -> tuple[float | None, dict[str, Any]]:
    """(network score, metric vector) of the flows ``flow_ids`` (see EPISODE_METRICS)."""
    vectors = [_flow_vector(f) for f in results.get("flows", [])
               if f.get("kind") == "rtc" and f.get("id") in flow_ids]
    if not vectors:
        return None, {}
    out: dict[str, Any] = {}
    for key in EPISODE_METRICS:
        values = [float(x) for v in vectors if isinstance(x := v[key], int | float)]
        if len(values) < len(vectors):
            out[key] = None  # a flow without it: no honest aggregate
        else:
            out[key] = sum(values) if key in SUMMED_METRICS else sum(values) / len(values)
    score = out["score"]
    return (float(score) if score is not None else None), out


def run_episode(spec: EpisodeSpec) -> EpisodeResult:
    """Run one episode in this process (the lab is down when this returns)."""
    from netlab.lab import lifecycle
    from netlab.run.plots import plot_run
    from netlab.run.results import new_run_dir
    from netlab.run.start import start_run

    t0 = time.monotonic()
    directory = Path(spec.directory)
    if isinstance(spec.env, ScenarioFile):
        scenario, controlled = with_controller(spec.env, lab=spec.lab, estimator=spec.estimator,
                                               checkpoint=spec.checkpoint,
                                               deadline_s=spec.deadline_s,
                                               fallback=spec.fallback)
    else:
        scenario = scenario_for(spec.env, directory, lab=spec.lab, estimator=spec.estimator,
                                checkpoint=Path(spec.checkpoint) if spec.checkpoint else None,
                                deadline_s=spec.deadline_s, fallback=spec.fallback)
        controlled = [CALL_FLOW]
    lab = lifecycle.up(scenario, backend=spec.backend)
    drained: list[npt.NDArray[Any]] = []
    try:
        run = start_run(scenario, lab, new_run_dir(directory / "runs", scenario.name),
                        explore=spec.explore)
        run_dir = run.run_dir
        controls = {host: str(a.control) for host, a in run.agents.agents.items()}
        (directory / CONTROL_FILE).write_text(json.dumps(controls))
        try:
            run.runner.start_receivers()
            run.begin()
            run.runner.run(scenario.duration_s)
        finally:
            with contextlib.suppress(FileNotFoundError):
                (directory / CONTROL_FILE).unlink()
            for agent in run.agents.agents.values():  # before stop: the buffer dies with it
                if agent.proc.poll() is None:
                    with contextlib.suppress(OSError, RuntimeError):
                        drained.append(ControlClient(agent.control, timeout_s=10).drain())
            run.stop()
        results = run.results([], stop_links=True)
        agent_results = run.agent_results
        fidelity = results["fidelity"]
        if spec.plots:
            plot_run(run_dir)
    finally:
        lab.down()
    score, metrics = episode_metrics(results, controlled)
    agent_summary = None
    if agent_results:
        first = agent_results[0]
        agent_summary = {k: first.get(k)
                         for k in ("decisions", "misses", "fallback_s", "latency_us")}
    rows = np.concatenate(drained) if drained else None
    epoch = (results.get("clock") or {}).get("start_monotonic_ns")
    causes = [str(c) for c in (fidelity.get("machine") or {}).get("causes") or []]
    return EpisodeResult(spec, score, bool(fidelity.get("faithful")), str(run_dir), agent_summary,
                         metrics, time.monotonic() - t0, None,
                         None if epoch is None else int(epoch), None, rows,
                         machine_causes=causes)


# ---- child process -----------------------------------------------------------------


def _set_parent_death_signal() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _die_with_parent(parent_pid: int) -> None:
    """In the forked child: SIGTERM when the learner dies.  A learner that
    died between the fork and the prctl sent no signal, so the child checks
    it still has that parent and exits at once if not (``prctl(2)``)."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(1)


def clear_predecessor(lab: str, wait_s: float = PREDECESSOR_WAIT_S) -> None:
    """Make way for an episode in lab ``lab``.  A killed node or learner can
    leave its episode's lab behind (the owner died without teardown) or
    still tearing down (its child got SIGTERM and is removing it).  The
    first is taken down, the second waited for; a lab whose owner still
    runs after ``wait_s`` is left alone, and the episode's preflight names it."""
    from netlab.lab import lifecycle, state
    from netlab.paths import run_root

    deadline = time.monotonic() + wait_s
    while (run_root() / lab).exists():
        with contextlib.suppress(NetlabError, OSError, ValueError):
            journaled = state.load(lab)
            if journaled is not None and not journaled.owner_alive():
                lifecycle.down(lab)
                return
        if time.monotonic() >= deadline:
            return
        time.sleep(0.2)


def child_main(spec_path: Path) -> int:
    """``python -m netlab.learning.labs SPEC.json``: run, write episode.json (+ .npy)."""
    from netlab.run.session import install_sigterm_handler

    install_sigterm_handler()
    spec = EpisodeSpec.from_json(json.loads(spec_path.read_text()))
    directory = Path(spec.directory)
    try:
        result = run_episode(spec)
    except (NetlabError, OSError, RuntimeError, ValueError) as exc:
        text = exc.render() if isinstance(exc, NetlabError) else f"{type(exc).__name__}: {exc}"
        result = EpisodeResult(spec, error=text)
    if result.transitions is not None:
        (directory / TRANSITIONS_FILE).write_bytes(to_npy(result.transitions))
    write_json_atomic(directory / EPISODE_FILE, result.to_json(), indent=1)
    return 0 if result.error is None else 1


def read_result(directory: Path) -> EpisodeResult | None:
    path = directory / EPISODE_FILE
    if not path.is_file():
        return None
    result = EpisodeResult.from_json(json.loads(path.read_text()))
    npy = directory / TRANSITIONS_FILE
    if npy.is_file():
        result.transitions = from_npy(npy.read_bytes())
    return result


# ---- K in parallel -----------------------------------------------------------------


@dataclass
class _Running:
    spec: EpisodeSpec
    proc: subprocess.Popen[bytes]
    early: list[npt.NDArray[Any]] = field(default_factory=list)
    index: int = 0  # its place in the specs LabPool.run was given


Tick = Callable[["LabPool"], None]


class EpisodePool(Protocol):
    """What runs a round's episodes: :class:`LabPool` here, ``RayLabPool`` on a cluster."""

    def run(self, specs: Sequence[EpisodeSpec], tick: Tick | None = None
            ) -> list[EpisodeResult]: ...


class LabPool:
    """Runs episode specs, at most ``parallel`` at a time, each in its own process."""

    def __init__(self, parallel: int, *, lab_prefix: str | None = None,
                 poll_s: float = 0.5) -> None:
        if parallel < 1:
            raise NetlabError(f"parallel labs must be >= 1, got {parallel}", where="parallel",
                              fix="give 1 or more")
        if lab_prefix is not None and not (lab_prefix[:1].isalpha()
                                           and len(lab_prefix) + len(str(parallel)) <= 12):
            raise NetlabError(f"lab prefix {lab_prefix!r} does not make lab names",
                              where="lab_prefix", fix="start with a letter, at most 10 chars")
        self.parallel = parallel
        self.lab_prefix = lab_prefix
        self.poll_s = poll_s
        self._running: list[_Running] = []

    def _free_lab(self) -> str | None:
        """A lab name no running episode uses (one per slot: ``<prefix><slot>``)."""
        if self.lab_prefix is None:
            return None
        used = {r.spec.lab for r in self._running}
        return next(f"{self.lab_prefix}{slot}" for slot in range(self.parallel + 1)
                    if f"{self.lab_prefix}{slot}" not in used)

    def controls(self) -> list[tuple[_Running, Path]]:
        found = []
        for run in self._running:
            path = Path(run.spec.directory) / CONTROL_FILE
            with contextlib.suppress(OSError, ValueError):
                for control in json.loads(path.read_text()).values():
                    found.append((run, Path(control)))
        return found

    def drain_running(self) -> int:
        """Take the transitions the live agents hold now (kept for their episode)."""
        count = 0
        for run, control in self.controls():
            with contextlib.suppress(OSError, RuntimeError):
                rows = ControlClient(control, timeout_s=5).drain()
                run.early.append(rows)
                count += len(rows)
        return count

    def take_running(self) -> list[npt.NDArray[Any]]:
        """Drain the live agents and hand the rows to the caller (a learner that
        updates mid-episode); they are not kept for the episode's result."""
        taken = []
        for _, control in self.controls():
            with contextlib.suppress(OSError, RuntimeError):
                rows = ControlClient(control, timeout_s=5).drain()
                if len(rows):
                    taken.append(rows)
        return taken

    def push(self, checkpoint: Path) -> int:
        """Hot-load ``checkpoint`` into every live agent; returns how many took it."""
        loaded = 0
        for _, control in self.controls():
            with contextlib.suppress(OSError, RuntimeError):
                ControlClient(control, timeout_s=10).load(checkpoint)
                loaded += 1
        return loaded

    def _start(self, spec: EpisodeSpec) -> _Running:
        lab = self._free_lab()
        if lab is not None:
            spec = replace(spec, lab=lab)
            clear_predecessor(lab)
        directory = Path(spec.directory).resolve()  # the child runs in it: no relative path
        spec = replace(spec, directory=str(directory))
        directory.mkdir(parents=True, exist_ok=True)
        for stale in (EPISODE_FILE, TRANSITIONS_FILE, CONTROL_FILE):
            with contextlib.suppress(FileNotFoundError):
                (directory / stale).unlink()
        spec_path = directory / SPEC_FILE
        spec_path.write_text(json.dumps(spec.to_json(), indent=1))
        with open(directory / "episode.out", "ab") as out:
            proc = subprocess.Popen([*python_argv("netlab.learning.labs"), str(spec_path)],
                                    cwd=directory, env=child_env(), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out,
                                    preexec_fn=functools.partial(_die_with_parent, os.getpid()),
                                    close_fds=True)
        return _Running(spec, proc)

    def run(self, specs: Sequence[EpisodeSpec], tick: Tick | None = None) -> list[EpisodeResult]:
        """Every spec's result, in order; ``tick(pool)`` is called every poll."""
        pending = list(enumerate(specs))
        results: dict[int, EpisodeResult] = {}
        try:
            while pending or self._running:
                while pending and len(self._running) < self.parallel:
                    index, spec = pending.pop(0)
                    started = self._start(spec)
                    started.index = index
                    self._running.append(started)
                time.sleep(self.poll_s)
                if tick is not None:
                    tick(self)
                for run in [r for r in self._running if r.proc.poll() is not None]:
                    self._running.remove(run)
                    results[run.index] = self._collect(run)
        finally:
            self.stop()
        return [results[i] for i in range(len(specs))]

    def _collect(self, run: _Running) -> EpisodeResult:
        directory = Path(run.spec.directory)
        result = read_result(directory)
        if result is None:
            tail = ""
            with contextlib.suppress(OSError):
                tail = (directory / "episode.out").read_text(errors="replace")[-800:]
            return EpisodeResult(run.spec, error=f"episode exited {run.proc.returncode} "
                                                 f"without a result: {tail.strip()}")
        parts = [*run.early, *([result.transitions] if result.transitions is not None else [])]
        if parts:
            result.transitions = np.concatenate(parts)
        return result

    def stop(self) -> None:
        """SIGTERM every running episode (each tears its lab down), then reap."""
        for run in self._running:
            if run.proc.poll() is None:
                run.proc.send_signal(signal.SIGTERM)
        for run in self._running:
            try:
                run.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(run.proc.pid, signal.SIGKILL)
                run.proc.wait()
        self._running.clear()


def fidelity_passes(results: Sequence[EpisodeResult]) -> bool:
    """Every episode ran, and every one's fidelity report says faithful."""
    return bool(results) and all(r.error is None and r.faithful for r in results)


def measure_parallel(candidates: Sequence[int], make_specs: Callable[[int], list[EpisodeSpec]],
                     report: Callable[[int, list[EpisodeResult]], None] | None = None, *,
                     lab_prefix: str = "ftk", trials: int = 2) -> int:
    """The largest K in ``candidates`` (tried in increasing order) whose K
    simultaneous episodes all keep their fidelity reports passing, ``trials``
    times in a row (one lucky quiet moment is not a measurement); stops at
    the first K that fails (more labs only add load). 1 if none passes."""
    best = 1
    for k in sorted(candidates):
        passed = True
        for _ in range(trials):
            results = LabPool(k, lab_prefix=lab_prefix).run(make_specs(k))
            if report is not None:
                report(k, results)
            if not fidelity_passes(results):
                passed = False
                break
        if not passed:
            break
        best = k
    return best


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m netlab.learning.labs SPEC.json", file=sys.stderr)
        sys.exit(2)
    _set_parent_death_signal()  # kept across exec; set again in case a wrapper ran between
    sys.exit(child_main(Path(sys.argv[1])))
