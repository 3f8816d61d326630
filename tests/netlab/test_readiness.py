"""Waiting for receivers: ready, exited while doing something, or stuck."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from netlab.errors import NetlabError
from netlab.readiness import Waiting, wait_ready

REPO = Path(__file__).resolve().parents[2]


def endpoint(directory: Path, script: str) -> subprocess.Popen[bytes]:
    """A process that reports its steps as the endpoints do (endpoints.ready)."""
    code = f"import sys, time\nfrom endpoints import ready\nd = {str(directory)!r}\n{script}"
    out = (directory / "receiver.out").open("wb")
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=out, stderr=out)


def test_waits_for_every_receiver_and_returns_their_ready_times(tmp_path: Path) -> None:
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.mkdir(), slow.mkdir()
    procs = [endpoint(fast, "ready.ready(d, 'listening')\ntime.sleep(5)"),
             endpoint(slow, "ready.starting(d, 'loading plugin x')\ntime.sleep(0.8)\n"
                            "ready.ready(d, 'receiving')\ntime.sleep(5)")]
    try:
        began = time.monotonic_ns()
        ready = wait_ready([Waiting("fast", fast, procs[0]), Waiting("slow", slow, procs[1])])
        waited = time.monotonic_ns() - began
        assert set(ready) == {"fast", "slow"}
        assert ready["fast"] < ready["slow"] <= time.monotonic_ns()
        assert 0.7e9 < waited < 5e9
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_an_exit_while_loading_names_the_flow_and_what_it_was_doing(tmp_path: Path) -> None:
    proc = endpoint(tmp_path, "ready.starting(d, 'loading plugin /p/BandwidthEstimator.py')\n"
                              "print('ImportError: no torch', file=sys.stderr)\nsys.exit(1)")
    with pytest.raises(NetlabError) as info:
        wait_ready([Waiting("rtc-0", tmp_path, proc, tmp_path / "receiver.out")])
    proc.wait()
    assert info.value.what == ("flow rtc-0: the receiver exited (status 1) while loading "
                               "plugin /p/BandwidthEstimator.py: ImportError: no torch")
    assert info.value.where == str(tmp_path / "receiver.out")
    assert "traceback" in (info.value.fix or "")


def test_a_receiver_stuck_past_the_bound_fails_the_run(tmp_path: Path) -> None:
    proc = endpoint(tmp_path, "ready.starting(d, 'loading plugin /p/slow.py')\ntime.sleep(30)")
    try:
        with pytest.raises(NetlabError) as info:
            wait_ready([Waiting("rtc-1", tmp_path, proc)], timeout_s=1.0)
    finally:
        proc.kill()
        proc.wait()
    assert info.value.what == ("flow rtc-1: the receiver was not ready after 1 s; it was "
                               "loading plugin /p/slow.py")
    assert info.value.where == str(tmp_path / "ready.json")
