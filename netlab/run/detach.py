"""``netlab up -d``: the lab and its run, kept going by a detached process.

``launch`` starts ``python -m netlab.run.detach`` in a session of its own
and waits until it reports the lab built and every part started (trace
replays, user-space links, agents, receivers) or an error, which is raised
here as if it happened in the foreground. The detached process starts the
flows at their times, writes results when they end, and waits for
``netlab down``: :func:`finish` sends it SIGTERM, and it stops the flows
that still run, stops replays, agents and links, brings ``results.json``
up to date (fidelity over the lab's whole life) and exits; then ``down``
removes the lab.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import psutil
from rich.console import Console

from netlab.errors import NetlabError
from netlab.paths import lab_dir

RUNNER_FILE = "detached.json"  # in the lab's directory: the detached process's pid
LOG_FILE = "netlab-up.log"  # in the run directory: the detached process's output
FINISH_TIMEOUT_S = 120.0  # results of a long run take a while to compute


class ReportedError(NetlabError):
    """The detached process's error, shown as it rendered it (a preflight
    error lists every failed check, not only its headline)."""

    def __init__(self, what: str, *, where: str | None, fix: str | None,
                 rendered: str | None) -> None:
        super().__init__(what, where=where, fix=fix)
        self.rendered = rendered

    def render(self) -> str:
        return self.rendered or super().render()


def launch(file: Path, *, backend: str | None, subnet: ipaddress.IPv4Network | None,
           out_base: Path, console: Console, plots: bool = True) -> Path:
    """Start the detached run of ``file``; return its run directory once all has started."""
    from netlab.run.results import new_run_dir
    from netlab.scenario import load_scenario

    scenario = load_scenario(file)  # a bad file is reported before anything starts
    run_dir = new_run_dir(out_base, scenario.name)
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "netlab.run.detach", "--ready-fd", str(write_end),
            "--run-dir", str(run_dir), str(file)]
    if backend:
        argv += ["--backend", backend]
    if subnet:
        argv += ["--subnet", str(subnet)]
    if not plots:
        argv.append("--no-plots")
    with open(run_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=(write_end,), start_new_session=True)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        raw = ready.read()  # EOF: the child reported, or died
    try:
        message: dict[str, Any] = json.loads(raw) if raw else {}
    except ValueError:
        message = {}
    if not message.get("ok"):
        proc.wait()
        if "what" in message:
            raise ReportedError(message["what"], where=message.get("where"),
                                fix=message.get("fix"), rendered=message.get("rendered"))
        raise NetlabError(f"the detached run of {file} stopped before the lab was up",
                          where=str(run_dir / LOG_FILE), fix="see that log")
    console.print(f"[green]up[/green] {message['lab']} ({message['hosts']} hosts, "
                  f"{message['backend']} shaping), detached: flows, trace replays and links "
                  f"run until 'netlab down {message['lab']}'; results in {run_dir}")
    for line in message.get("backend_choice", []):
        console.print(line)
    return run_dir


def finish(name: str, console: Console) -> None:
    """Ask the detached run of lab ``name`` (if any) to write its results and exit."""
    try:
        info = json.loads((lab_dir(name) / RUNNER_FILE).read_text())
        proc = psutil.Process(int(info["pid"]))
        if abs(proc.create_time() - float(info["pid_start"])) > 0.05:
            return  # the pid was reused: not ours
    except (OSError, ValueError, KeyError, psutil.Error):
        return
    console.print(f"{name}: the detached run is writing its results ({info['run_dir']})")
    try:
        proc.terminate()
        proc.wait(timeout=FINISH_TIMEOUT_S)
    except psutil.TimeoutExpired:
        console.print(f"[yellow]warning[/yellow] {name}: the detached run did not finish in "
                      f"{FINISH_TIMEOUT_S:.0f} s; it is ended with the lab")
    except psutil.Error:
        return


def _report(ready: IO[str] | None, message: dict[str, Any]) -> None:
    if ready is not None and not ready.closed:
        ready.write(json.dumps(message))
        ready.close()


def serve(args: argparse.Namespace) -> int:
    """The detached process: build, start, run the flows, wait for ``down``."""
    from netlab.lab import lifecycle
    from netlab.lab.backends import choice_lines
    from netlab.run.session import install_sigterm_handler
    from netlab.run.start import start_run
    from netlab.scenario import load_scenario

    install_sigterm_handler()
    ready: IO[str] | None = os.fdopen(args.ready_fd, "w")
    run_dir = Path(args.run_dir)
    try:
        scenario = load_scenario(Path(args.file))
        lab = lifecycle.up(scenario, backend=args.backend,
                           subnet=ipaddress.IPv4Network(args.subnet) if args.subnet else None)
    except NetlabError as exc:
        _report(ready, {"ok": False, "what": exc.what, "where": exc.where, "fix": exc.fix,
                        "rendered": exc.render()})
        return 1
    try:
        me = psutil.Process()
        lab.journal.record("process", str(me.pid), pid_start=me.create_time())
        (lab_dir(lab.name) / RUNNER_FILE).write_text(json.dumps(
            {"pid": me.pid, "pid_start": me.create_time(), "run_dir": str(run_dir)}))
        run = start_run(scenario, lab, run_dir, until_down=True)
        run.runner.start_receivers()
    except NetlabError as exc:
        lab.down()
        _report(ready, {"ok": False, "what": exc.what, "where": exc.where, "fix": exc.fix,
                        "rendered": exc.render()})
        return 1
    except BaseException:
        lab.down()
        raise
    _report(ready, {"ok": True, "lab": lab.name, "hosts": len(lab.plan.hosts),
                    "backend": lab.backend,
                    "backend_choice": choice_lines(lab.backends)})
    ready = None
    try:
        run.begin()  # the same one time zero for traces and flows as in the foreground
        run.runner.run(scenario.duration_s)
        if run.runner.flows:

            print(f"flows ended after {scenario.duration_s:g} s: writing results", flush=True)
            run.results_so_far()
        while True:  # everything else runs until 'netlab down' (SIGTERM)
            time.sleep(3600)
    except KeyboardInterrupt:
        print("netlab down: stopping and writing results", flush=True)
    run.runner.stop_all()
    run.stop()
    run.results([], stop_links=True)
    if args.plots:
        from netlab.run.plots import plot_run

        plot_run(run_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netlab.run.detach")
    parser.add_argument("file")
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--backend")
    parser.add_argument("--subnet")
    parser.add_argument("--no-plots", dest="plots", action="store_false")
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
