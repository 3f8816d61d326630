"""A real agent process per test (the OpenNetLab checkpoint by default), ended by pid."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ONL_CHECKPOINT = REPO / "models" / "opennetlab-pretrained.pth"


@dataclass
class RunningAgent:
    proc: subprocess.Popen[bytes]
    socket: Path
    control: Path
    stats: Path
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_ready(path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.connect(str(path))
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"agent did not start: {log.read_text()}") from None
            time.sleep(0.05)
        finally:
            probe.close()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., RunningAgent]]:
    started: list[RunningAgent] = []

    def start(*extra: str, checkpoint: Path | None = ONL_CHECKPOINT,
              name: str = "a") -> RunningAgent:
        sock, control = tmp_path / f"{name}.sock", tmp_path / f"{name}.ctl"
        stats, log = tmp_path / f"{name}_stats.json", tmp_path / f"{name}.out"
        argv = [sys.executable, "-m", "netlab.agent", "--socket", str(sock), "--control",
                str(control), "--stats-out", str(stats), *extra]
        if checkpoint is not None:
            argv += ["--checkpoint", str(checkpoint)]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=out)
        agent = RunningAgent(proc, sock, control, stats, log)
        started.append(agent)
        wait_ready(sock, proc, log)
        return agent

    try:
        yield start
    finally:
        for agent in started:
            agent.stop()
