"""Run the real sender and receiver processes, on the host's loopback or
inside a throwaway namespace of this test file (prefix ``nlti-``)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
_NETNS_COUNTER = itertools.count()


@dataclass
class Pair:
    sender_dir: Path
    receiver_dir: Path
    sender_rc: int
    receiver_rc: int
    sender_stderr: str
    receiver_stderr: str


def _prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def start_receiver(log_dir: Path, *, duration_s: float = 30.0, netns: str | None = None,
                   extra: Sequence[str] = ()) -> tuple[subprocess.Popen[str], int]:
    """Start a receiver on 127.0.0.1 with a free port; return it and the port."""
    proc = subprocess.Popen(
        [*_prefix(netns), sys.executable, "-m", "endpoints.tcp.receiver_app",
         "--bind", "127.0.0.1:0", "--log-dir", str(log_dir), "--duration", str(duration_s),
         *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    meta = log_dir / "receiver.json"
    deadline = time.monotonic() + 10
    while not meta.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise AssertionError(f"receiver did not start: {proc.communicate()[1]}")
        time.sleep(0.01)
    return proc, int(json.loads(meta.read_text())["bind_port"])


def start_sender(log_dir: Path, port: int, args: Sequence[str], *,
                 netns: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*_prefix(netns), sys.executable, "-m", "endpoints.tcp.sender_app",
         "--dest", f"127.0.0.1:{port}", "--log-dir", str(log_dir), *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Wait for ``proc``; SIGKILL it (by pid) if it overstays."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.fixture
def run_pair(tmp_path: Path) -> Iterator[Callable[..., Pair]]:
    """``run_pair(sender_args, netns=None, during=None)`` runs a receiver and a
    sender to completion; ``during(sender_proc, sender_dir)`` runs while the
    sender is up. Processes are always reaped."""
    procs: list[subprocess.Popen[str]] = []

    def run(args: Sequence[str], *, netns: str | None = None,
            during: Callable[[subprocess.Popen[str], Path], None] | None = None,
            name: str = "flow", receiver_duration_s: float = 30.0) -> Pair:
        base = tmp_path / name
        receiver, port = start_receiver(base / "r", netns=netns,
                                        duration_s=receiver_duration_s)
        procs.append(receiver)
        sender = start_sender(base / "s", port, args, netns=netns)
        procs.append(sender)
        if during is not None:
            during(sender, base / "s")
        _out, s_err = sender.communicate(timeout=60)
        _out, r_err = receiver.communicate(timeout=30)
        return Pair(base / "s", base / "r", sender.returncode, receiver.returncode, s_err, r_err)

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.fixture
def lo_netns() -> Iterator[str]:
    """A namespace whose loopback behaves like an Ethernet path: MTU 1500
    and ``tcp_tso_rtt_log=0`` (on the host's loopback the RTT is a few µs,
    so the kernel builds 64 kB TSO frames and pacing happens in 64 kB
    steps; see endpoints/tcp/pacing.py)."""
    name = f"nlti-{os.getpid()}-{next(_NETNS_COUNTER)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "mtu", "1500", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-q", "-w",
                        "net.ipv4.tcp_tso_rtt_log=0"], check=True)
        yield name
    finally:
        _delete_netns(name)


def _delete_netns(name: str) -> None:
    """``ip netns del``, then wait until the name is really gone (retrying:
    it can fail with EBUSY for a moment while the last ``ip netns exec``
    child is still being torn down)."""
    path = Path(f"/run/netns/{name}")
    attempts: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if path.exists():
            result = subprocess.run(["ip", "netns", "del", name], capture_output=True,
                                    text=True)
            attempts.append(f"rc={result.returncode} {result.stderr.strip()}")
        if not path.exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"could not delete namespace {name}: {attempts}")
