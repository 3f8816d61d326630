"""The host side of the VMs' vCPUs: found by their thread names, raised for a run and
given back.  A thread of this test process named as QEMU names a vCPU stands in for one."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from netlab.vagrant import vcpus

PR_SET_NAME = 15  # linux/prctl.h


@pytest.fixture
def vcpu_thread() -> Iterator[int]:
    """A thread called ``CPU 0/TCG`` in this process; yields its tid."""
    ready, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def body() -> None:
        ctypes.CDLL(None).prctl(PR_SET_NAME, b"CPU 0/TCG", 0, 0, 0)
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(30)

    thread = threading.Thread(target=body)
    thread.start()
    ready.wait(10)
    yield tid[0]
    done.set()
    thread.join()


def test_vcpu_threads_are_found_from_the_domains_pidfile(tmp_path: Path,
                                                          vcpu_thread: int) -> None:
    (tmp_path / "nl-lab-bob.pid").write_text(f"{os.getpid()}\n")
    assert vcpus.vcpu_threads("nl-lab-bob", tmp_path) == {vcpu_thread: "CPU 0/TCG"}
    assert vcpus.vcpu_threads("nl-lab-gone", tmp_path) == {}  # no pidfile: not running


@pytest.mark.skipif(os.geteuid() != 0, reason="a negative nice value needs root")
def test_raised_for_the_run_then_given_back(vcpu_thread: int) -> None:
    own = os.getpriority(os.PRIO_PROCESS, vcpu_thread)
    with vcpus.raised({vcpu_thread: "VM bob CPU 0/TCG (qemu)"}) as got:
        assert got == {"VM bob CPU 0/TCG (qemu)": -15}
        assert os.getpriority(os.PRIO_PROCESS, vcpu_thread) == -15
    assert os.getpriority(os.PRIO_PROCESS, vcpu_thread) == own
    with vcpus.raised({2 ** 22 + 12345: "VM gone"}) as got:  # no such thread: said, not raised
        assert got == {"VM gone": None}
