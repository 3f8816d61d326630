"""An episode's lab name left taken by a killed predecessor: taken down when
its owner is dead, never touched while its owner lives."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from netlab.lab import lifecycle
from netlab.learning.labs import clear_predecessor
from tests.lab.scenarios import unique_lab

REPO = Path(__file__).resolve().parents[3]

#: Builds a two-host lab, says so, then waits to be killed.
BUILD_AND_WAIT = """
import sys, time
from netlab.lab import lifecycle
from tests.lab.scenarios import two_hosts
lifecycle.up(two_hosts(sys.argv[1]))
print("up", flush=True)
time.sleep(120)
"""


def _namespaces(lab: str) -> list[str]:
    return [p.name for p in Path("/run/netns").iterdir() if p.name.startswith(f"nl-{lab}.")]


def _owner(lab: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", BUILD_AND_WAIT, lab], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    return proc


def test_a_dead_owners_lab_is_taken_down_before_the_episode() -> None:
    lab = unique_lab("pred")
    owner = _owner(lab)
    owner.send_signal(signal.SIGKILL)  # as a killed node or learner dies: no teardown
    owner.wait()
    assert len(_namespaces(lab)) == 2
    clear_predecessor(lab, wait_s=5)
    assert _namespaces(lab) == []


def test_a_live_owners_lab_is_left_alone() -> None:
    lab = unique_lab("predl")
    owner = _owner(lab)
    try:
        began = time.monotonic()
        clear_predecessor(lab, wait_s=1.0)
        assert time.monotonic() - began >= 1.0  # it waited for the owner's own teardown
        assert len(_namespaces(lab)) == 2  # and took nothing from a live owner
    finally:
        owner.kill()
        owner.wait()
        lifecycle.down(lab)
    assert _namespaces(lab) == []
