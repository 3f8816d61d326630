"""SIGKILL at a random moment, then `netlab down`: does anything of the lab remain?

Each trial starts `netlab up -d` or `netlab run` (alternately) of a small
scenario, kills it with SIGKILL at a random moment of its build or run (no
clean-up code runs), then runs `netlab down NAME` and looks for anything
of that lab: a namespace `nl-NAME.*`, a new root-namespace interface, a
process the killed netlab started (seen while it ran, matched by pid and
start time) or one whose command line names the lab's run directory, and
the lab's run directory itself.  The kernel backend's scenario uses only a
rate (this kernel has no netem); the user-space backend's adds delay and loss.

Run as root:  .venv/bin/python bench/sigkill.py [--trials 100] [--backend user]
Prints trials passed / total per backend; exits 1 if any trial left something.
A private run root is used (NETLAB_RUN_ROOT), so users' labs are never seen.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from labcore.netlink import IPRoute

ROOT = Path(__file__).resolve().parents[1]
NETLAB = [sys.executable, "-m", "netlab.cli.main"]
SCENARIOS = {
    "kernel": "  - endpoints: [alice, bob]\n    rate: 10Mbit\n",
    "user": "  - endpoints: [alice, bob]\n    rate: 10Mbit\n    delay: 10ms\n    loss: 0.1%\n",
}
DURATION_S = 2.0
# Kill moments, counted from when the lab's state file appears (the build's
# start): up -d ends after the build, run after the duration and results.
# EARLY of the trials are killed instead within EARLY_WINDOW_S of the start
# (before or while preflight runs).
KILL_WINDOW_S = {"up": 0.8, "run": DURATION_S + 1.5}
EARLY = 0.1
EARLY_WINDOW_S = 1.5
WATCH_PERIOD_S = 0.01


@dataclass
class Outcome:
    backend: str
    mode: str
    kill_at_s: float
    phase: str = ""  # what the lab's state said when the SIGKILL came
    left: list[str] = field(default_factory=list)


def _root_links() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def _descendants(pid: int, seen: dict[int, float]) -> None:
    """Record every process under ``pid`` with its start time (they outlive a SIGKILL)."""
    try:
        for child in psutil.Process(pid).children(recursive=True):
            seen.setdefault(child.pid, child.create_time())
    except psutil.Error:
        return


def _alive(pid: int, started: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - started) < 0.05
    except psutil.Error:
        return False


def _naming(run_dir: Path) -> list[int]:
    """Processes whose command line mentions the lab's run directory."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(str(run_dir) in part for part in proc.info["cmdline"] or ()):
            found.append(proc.info["pid"])
    return found


def _phase(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "state.json").read_text())["status"])
    except (OSError, ValueError, KeyError):
        return "no state yet"


def trial(name: str, backend: str, mode: str, kill_at_s: float, work: Path,
          env: dict[str, str], *, after_state: bool) -> Outcome:
    """Kill ``kill_at_s`` after the start, or after the state file appears."""
    path = work / f"{name}.yaml"
    path.write_text(f"name: {name}\nduration: {DURATION_S}s\nhosts: [alice, bob]\nlinks:\n"
                    + SCENARIOS[backend])
    command = ["up", "-d"] if mode == "up" else ["run"]
    links_before = _root_links()
    seen: dict[int, float] = {}
    proc = subprocess.Popen([*NETLAB, *command, "-q", "--backend", backend,
                             "--out", str(work / "runs"), str(path)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = Path(env["NETLAB_RUN_ROOT"]) / name / "state.json"
    limit = time.monotonic() + 60
    while after_state and not state_file.exists() and proc.poll() is None \
            and time.monotonic() < limit:
        _descendants(proc.pid, seen)
        time.sleep(0.002)
    deadline = time.monotonic() + kill_at_s
    while time.monotonic() < deadline and proc.poll() is None:
        _descendants(proc.pid, seen)
        time.sleep(WATCH_PERIOD_S)
    _descendants(proc.pid, seen)
    phase = _phase(Path(env["NETLAB_RUN_ROOT"]) / name) if proc.poll() is None else "exited"
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    down = subprocess.run([*NETLAB, "down", name], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    outcome = Outcome(backend, mode, kill_at_s, phase)
    if down.returncode != 0 and "no lab named" not in down.stderr:
        outcome.left.append(f"down failed: {down.stderr.strip()}")
    run_dir = Path(env["NETLAB_RUN_ROOT"]) / name
    time.sleep(0.2)  # the kernel frees a namespace's devices asynchronously
    outcome.left += [f"namespace {ns}" for ns in os.listdir("/run/netns")
                     if ns.startswith(f"nl-{name}.")]
    outcome.left += [f"interface {i}" for i in sorted(_root_links() - links_before)]
    outcome.left += [f"process {pid}" for pid, started in seen.items() if _alive(pid, started)]
    outcome.left += [f"process {pid} (names {run_dir})" for pid in _naming(run_dir)]
    if run_dir.exists():
        outcome.left.append(f"run dir {run_dir}")
    for pid, started in seen.items():  # leave the machine clean for the next trial
        if _alive(pid, started):
            os.kill(pid, signal.SIGKILL)
    return outcome


def run_trials(backend: str, trials: int, *, seed: int = 1,
               report: bool = True) -> list[Outcome]:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="netlab-sigkill-"))
    env = {**os.environ, "NETLAB_RUN_ROOT": str(work / "run"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    outcomes = []
    try:
        for index in range(trials):
            mode = ("up", "run")[index % 2]
            early = rng.random() < EARLY
            kill_at = rng.uniform(0.0, EARLY_WINDOW_S if early else KILL_WINDOW_S[mode])
            name = f"sk{backend[0]}{os.getpid() % 1000}{index}"[:12]
            outcome = trial(name, backend, mode, kill_at, work, env, after_state=not early)
            outcomes.append(outcome)
            if report and outcome.left:
                print(f"  {backend} trial {index} ({mode}, SIGKILL at {kill_at:.2f} s) left: "
                      + ", ".join(outcome.left), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per backend")
    parser.add_argument("--backend", choices=("kernel", "user"), action="append",
                        help="backend to test (default: both)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    failed = 0
    for backend in args.backend or ["kernel", "user"]:
        started = time.monotonic()
        outcomes = run_trials(backend, args.trials, seed=args.seed)
        passed = sum(not o.left for o in outcomes)
        failed += len(outcomes) - passed
        phases = collections.Counter(f"{o.mode} {o.phase}" for o in outcomes)
        print(f"{backend}: {passed}/{len(outcomes)} trials left nothing "
              f"({time.monotonic() - started:.0f} s; killed while: "
              + ", ".join(f"{k} {v}" for k, v in sorted(phases.items())) + ")", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
