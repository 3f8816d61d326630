"""Starting and stopping the capture processes of a run.

One ``dumpcap`` per capture point, started inside the point's namespace in
a session of its own (a Ctrl-C meant for the lab does not cut a capture
short), journaled by pid and start time so ``netlab down`` ends it after a
crash.  dumpcap writes pcapng with kernel timestamps in nanoseconds, keeps
only ``snaplen`` bytes per packet and rotates through a ring of files
(``-b filesize/files``), so a long run cannot fill the disk.  What was
started, when it stopped and what each process dropped go to
``capture/capture.json`` for the analysis.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from labcore.jsonfile import write_json_atomic
from labcore.processes import wait_ended
from netlab.capture.mirror import add_mirror, remove_mirror
from netlab.capture.points import (
    CAPTURE_FILTER,
    Backend,
    CapturePoint,
    LinkDirection,
    capture_points,
    destinations,
)
from netlab.errors import NetlabError
from netlab.lab import netns
from netlab.lab.plan import LabPlan
from netlab.lab.state import StateJournal

CAPTURE_DIR = "capture"
MANIFEST = "capture.json"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# libpcap hands TPACKET_V3 blocks to dumpcap when full or after its read
# timeout (250 ms in dumpcap); a block not yet handed over when dumpcap
# exits is lost, so stopping waits this long first.
FLUSH_S = 0.4
_STATS = re.compile(r"Packets received/dropped on interface '[^']*': (\d+)/(\d+)")


@dataclass(frozen=True)
class CaptureOptions:
    """Per capture point: bytes kept per packet and the ring of files."""

    snaplen: int = 128  # IPv4 + TCP headers with options and the payload's start
    file_size_kb: int = 20_000  # dumpcap's kB (1000 bytes) per file
    files: int = 10  # ring length: at most files * file_size_kb per point
    buffer_mib: int = 4  # kernel capture buffer, against drops on a loaded machine


@dataclass(frozen=True)
class CaptureRequest:
    """Capture these directions of one link (a link's ``capture:`` field)."""

    link: str
    directions: tuple[LinkDirection, ...] = ("up", "down")


@dataclass
class _Running:
    point: CapturePoint
    proc: subprocess.Popen[bytes]
    stderr: Path
    pid_start: float = 0.0  # the process's start time, so a reused pid is never signalled


@dataclass
class CaptureHandle:
    """The capture processes of one run; ``stop()`` once, when the flows end."""

    run_dir: Path
    backend: Backend
    options: CaptureOptions
    running: list[_Running] = field(default_factory=list)
    started_ns: int = 0
    stopped_ns: int | None = None
    destinations: dict[str, dict[LinkDirection, list[str]]] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.run_dir / CAPTURE_DIR

    @property
    def pids(self) -> list[int]:
        return [r.proc.pid for r in self.running]

    def cpu_seconds(self) -> float:
        """CPU time the capture processes used so far."""
        return sum(cpu_seconds(item.proc.pid) for item in self.running)

    def stop(self) -> None:
        """End every capture (SIGTERM, so dumpcap writes its last block),
        remove kernel mirrors and complete the manifest; safe to call twice."""
        if self.stopped_ns is not None:
            return
        self.stopped_ns = time.time_ns()
        if any(item.proc.poll() is None for item in self.running):
            time.sleep(FLUSH_S)
        cpu_s = self.cpu_seconds()
        for item in self.running:
            if item.proc.poll() is None:
                item.proc.send_signal(signal.SIGTERM)
        for item in self.running:
            try:
                item.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                item.proc.kill()
                item.proc.wait()
            if item.point.mirror_of is not None:
                remove_mirror(item.point)
        _open_to_all(self.directory)
        _write_manifest(self, cpu_s=cpu_s)


def cpu_seconds(pid: int) -> float:
    """A process's time on a CPU, in ns from /proc/PID/schedstat (clock-tick
    counters round a light process's cost to zero); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _open_to_all(directory: Path) -> None:
    for path in directory.glob("*.pcapng"):
        path.chmod(0o644)  # dumpcap writes 0600; the user who ran sudo opens them too


def stop_recorded(run_dir: Path) -> bool:
    """Stop a run's captures from its manifest alone: for a process other
    than the one that started them (``netlab down`` of a detached lab).

    Processes are matched by pid and start time.  Returns False when there
    was nothing to stop (no capture, or stopped already).
    """
    path = run_dir / CAPTURE_DIR / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return False
    if data.get("stopped_ns"):
        return False
    data["stopped_ns"] = time.time_ns()
    procs: list[psutil.Process] = []
    for point in data["points"]:
        try:
            proc = psutil.Process(point["pid"])
            if abs(proc.create_time() - point.get("pid_start", 0.0)) < 0.05:
                procs.append(proc)
        except psutil.Error:
            continue
    if procs:
        time.sleep(FLUSH_S)
    cpu_s = sum(cpu_seconds(proc.pid) for proc in procs)
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            continue
    for proc in wait_ended(procs, STOP_TIMEOUT_S):
        proc.kill()
    directory = run_dir / CAPTURE_DIR
    for point in data["points"]:
        if point.get("mirror_of"):
            remove_mirror(CapturePoint(point["link"], point["namespace"], point["interface"],
                                       tuple((d, r) for d, r in point["serves"]),
                                       point["mirror_of"]))
        point["stats"] = _stats(directory / f"{point['stem']}.dumpcap.log")
    data["cpu_s"] = cpu_s
    _open_to_all(directory)
    write_json_atomic(path, data, indent=1)
    return True


def _stats(stderr: Path) -> dict[str, int]:
    """What dumpcap said it received and dropped (kernel + its own)."""
    try:
        found = _STATS.findall(stderr.read_text(errors="replace"))
    except OSError:
        return {}
    if not found:
        return {}
    received, dropped = found[-1]
    return {"received": int(received), "dropped": int(dropped)}


def _write_manifest(handle: CaptureHandle, cpu_s: float | None = None) -> None:
    data: dict[str, Any] = {
        "version": 1,
        "backend": handle.backend,
        "options": asdict(handle.options),
        "started_ns": handle.started_ns,
        "stopped_ns": handle.stopped_ns,
        "cpu_s": cpu_s,
        "destinations": handle.destinations,
        "points": [{**asdict(r.point), "stem": r.point.stem, "pid": r.proc.pid,
                    "pid_start": r.pid_start,
                    **({"stats": _stats(r.stderr)} if handle.stopped_ns else {})}
                   for r in handle.running],
    }
    write_json_atomic(handle.directory / MANIFEST, data, indent=1)


def _dumpcap() -> str:
    found = shutil.which("dumpcap")
    if found is None:
        raise NetlabError("dumpcap is not installed, so links cannot be captured",
                          where="links[].capture",
                          fix="install it (apt-get install tshark; install.sh does) "
                              "or remove 'capture' from the scenario's links")
    return found


def _argv(dumpcap: str, point: CapturePoint, options: CaptureOptions, out: Path) -> list[str]:
    return [dumpcap, "-q", "-i", point.interface, "-f", CAPTURE_FILTER,
            "-s", str(options.snaplen), "-B", str(options.buffer_mib),
            "-b", f"filesize:{options.file_size_kb}", "-b", f"files:{options.files}",
            "-w", str(out / f"{point.stem}.pcapng")]


def _wait_ready(item: _Running, directory: Path, deadline: float) -> None:
    """dumpcap writes its first file once the packet socket and its filter
    are in place (its 'Capturing on' comes earlier, and packets in between
    are not recorded)."""
    while time.monotonic() < deadline:
        if any(p.stat().st_size > 0 for p in directory.glob(f"{item.point.stem}_*.pcapng")):
            return
        if item.proc.poll() is not None:
            break
        time.sleep(0.02)
    tail = item.stderr.read_text(errors="replace").strip().splitlines()[-3:]
    raise NetlabError(
        f"the capture of {item.point.stem} did not start"
        + (f": {' | '.join(tail)}" if tail else ""),
        where=f"{item.point.namespace}/{item.point.interface} ({item.stderr})",
        fix="run as root and check that dumpcap works: dumpcap -D")


def start_capture(plan: LabPlan, backend: Backend, requests: list[CaptureRequest],
                  run_dir: Path, journal: StateJournal,
                  options: CaptureOptions | None = None,
                  link_backends: Mapping[str, Backend] | None = None) -> CaptureHandle:
    """Capture the entry and exit of each requested link direction into
    ``run_dir/capture``; returns once every capture is recording.  ``link_backends``:
    the links shaped otherwise than ``backend`` (htb fell back to the user-space link)."""
    options = options or CaptureOptions()
    of = link_backends or {}
    points = [p for r in requests
              for p in capture_points(plan, of.get(r.link, backend), r.link, r.directions)]
    dumpcap = _dumpcap()
    handle = CaptureHandle(run_dir, backend, options, started_ns=time.time_ns(),
                           destinations={r.link: destinations(plan, r.link) for r in requests})
    handle.directory.mkdir(parents=True, exist_ok=True)
    try:
        for point in points:
            if point.mirror_of is not None:
                add_mirror(point, journal)
            stderr = handle.directory / f"{point.stem}.dumpcap.log"
            with open(stderr, "wb") as err:
                proc = subprocess.Popen(
                    _argv(dumpcap, point, options, handle.directory),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    preexec_fn=lambda ns=point.namespace: netns.enter(ns),  # type: ignore[misc]
                    start_new_session=True, close_fds=True)
            pid_start = psutil.Process(proc.pid).create_time()
            handle.running.append(_Running(point, proc, stderr, pid_start))
            journal.record("process", str(proc.pid), pid_start=pid_start)
        deadline = time.monotonic() + READY_TIMEOUT_S
        for item in handle.running:
            _wait_ready(item, handle.directory, deadline)
    except BaseException:
        handle.stop()
        for point in points:
            if point.mirror_of is not None:
                remove_mirror(point)
        raise
    _write_manifest(handle)
    return handle
