"""Suite-wide fixtures: a private run root and a check that nothing leaked.

Every test is followed by a comparison of network namespaces, root-namespace
interfaces, child processes and lab run directories before and after it;
anything new fails the test with the leaked objects named.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from labcore.netlink import IPRoute

_RUN_ROOT = Path(tempfile.mkdtemp(prefix="netlab-test-run-"))
os.environ["NETLAB_RUN_ROOT"] = str(_RUN_ROOT)
# Developers running tests beside other work may exclude their names (regex);
# CI never sets this, so there every object counts.
_IGNORE = re.compile(os.environ["NETLAB_LEAKCHECK_IGNORE"]) if os.environ.get(
    "NETLAB_LEAKCHECK_IGNORE") else None
#: How long things may take to go after a test: namespaces free their veths
#: asynchronously, and Ray ends killed actors' and shut-down workers' processes
#: asynchronously, seconds later on a loaded 2-core machine.
LEAK_WAIT_S = 10.0


def _namespaces() -> set[str]:
    try:
        return {p.name for p in Path("/run/netns").iterdir()}
    except FileNotFoundError:
        return set()


def _root_links() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def _children() -> set[int]:
    """Live descendants (an exited child its parent has not reaped yet holds no
    resource: its parent is still running and answerable for it)."""
    alive = set()
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.add(proc.pid)
    return alive


def _run_dirs() -> set[str]:
    if not _RUN_ROOT.exists():
        return set()
    return {p.name for p in _RUN_ROOT.iterdir() if not p.name.startswith(".")}  # caches


def _snapshot() -> dict[str, set[str]]:
    return {
        "namespace": _namespaces(),
        "interface": _root_links(),
        "process": {str(pid) for pid in _children()},
        "run dir": _run_dirs(),
    }


def _leaks(before: dict[str, set[str]]) -> list[str]:
    after = _snapshot()
    leaked = []
    for kind, names in after.items():
        for name in sorted(names - before[kind]):
            if _IGNORE and _IGNORE.search(name):
                continue
            leaked.append(f"{kind} {name}")
    return leaked


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    before = _snapshot()
    yield
    deadline = time.monotonic() + LEAK_WAIT_S
    leaked = _leaks(before)
    while leaked and time.monotonic() < deadline:
        time.sleep(0.1)
        leaked = _leaks(before)
    assert not leaked, f"test leaked: {', '.join(leaked)}"


@pytest.fixture
def run_root() -> Path:
    return _RUN_ROOT


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil

    shutil.rmtree(_RUN_ROOT, ignore_errors=True)
