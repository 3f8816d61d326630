"""A two-node Ray cluster on this machine, for tests.

A head (``ray start --head``) and a second raylet joined to it with ``ray
start --address``, each declaring its own custom resource, both in the
foreground (``--block``) in sessions of their own, with every port chosen
free (other clusters may run here) and a token of their own. ``stop`` ends
every process the two started, found by pid (their process trees, and any
process naming this cluster's temporary folder or address), never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from labcore.processes import wait_ended

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_RESOURCE, WORKER_RESOURCE = "netlab_head", "netlab_lab"
START_TIMEOUT_S = 90.0


def _ray_start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([RAY, "start", *argv, "--block", "--disable-usage-stats"],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, stdin=subprocess.DEVNULL)


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _node_ports() -> list[str]:
    names = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
             "metrics-export-port", "node-manager-port", "object-manager-port")
    return [f"--{name}={port}" for name, port in zip(names, _free_ports(len(names)),
                                                      strict=True)]


@dataclass
class Cluster:
    address: str
    temp_dir: Path
    env: dict[str, str]
    head: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes] | None = None
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def raylet(self, root: subprocess.Popen[bytes]) -> psutil.Process:
        """The raylet a ``ray start`` process runs (its node)."""
        for child in psutil.Process(root.pid).children(recursive=True):
            if child.name() == "raylet":
                return child
        raise LookupError(f"no raylet under pid {root.pid}")

    def note(self) -> None:
        """Remember every process this cluster runs now (a killed raylet's
        children may outlive it, no longer in the tree)."""
        for root in (self.head, self.worker):
            if root is None:
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                top = psutil.Process(root.pid)
                for proc in [top, *top.children(recursive=True)]:
                    self.seen[proc.pid] = proc

    def _ours(self) -> list[psutil.Process]:
        self.note()
        found = dict(self.seen)
        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info["cmdline"] or [])
            if str(self.temp_dir) in line or self.address in line:  # our folder, our GCS
                found[proc.pid] = proc
        alive = []
        for proc in found.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
        return alive

    def stop(self) -> list[int]:
        """End everything this cluster started, by pid; the pids still alive after."""
        procs = self._ours()
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        alive = wait_ended(procs, 5)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        wait_ended(alive, 10)
        for root in (self.head, self.worker):
            if root is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    root.wait(timeout=5)
        left = [p.pid for p in self._ours()]
        if not left:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            for log in ("head", "worker"):
                self.temp_dir.with_name(f"{self.temp_dir.name}.{log}.out").unlink(missing_ok=True)
        return left


def start_cluster(worker_labs: int = 2) -> Cluster:
    """Head (1 CPU, ``netlab_head``) and a worker (1 CPU, ``netlab_lab: worker_labs``)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="nlray-", dir="/tmp"))  # unix socket paths: short
    port, client, dashboard = _free_ports(3)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0"}
    head = _ray_start(
        ["--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
         f"--resources={json.dumps({HEAD_RESOURCE: 1})}", f"--temp-dir={temp_dir}",
         "--include-dashboard=false", f"--dashboard-port={dashboard}",
         f"--ray-client-server-port={client}", *_node_ports()], env,
        temp_dir.with_name(temp_dir.name + ".head.out"))
    cluster = Cluster(f"127.0.0.1:{port}", temp_dir, env, head)
    try:
        _wait(lambda: subprocess.run([RAY, "health-check", f"--address={cluster.address}"],
                                     env=env, capture_output=True).returncode == 0, "the head")
        cluster.worker = _ray_start(
            [f"--address={cluster.address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
             f"--resources={json.dumps({WORKER_RESOURCE: worker_labs})}", *_node_ports()], env,
            temp_dir.with_name(temp_dir.name + ".worker.out"))
        _wait(lambda: _has_raylet(cluster.worker), "the worker's raylet")
        cluster.note()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _has_raylet(root: subprocess.Popen[bytes] | None) -> bool:
    if root is None or root.poll() is not None:
        raise RuntimeError("ray start exited")
    return any(c.name() == "raylet" for c in psutil.Process(root.pid).children(recursive=True))


def _wait(ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not start in {START_TIMEOUT_S:.0f} s")
