"""Fixtures for preflight tests: a private run root and a namespace of our own."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labcore.netlink import netns
from netlab.preflight import capabilities

TEST_PREFIX = "nltb-"


@pytest.fixture
def run_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Labs and the capability cache live here, never in /run/netlab."""
    root = tmp_path / "run"
    root.mkdir()
    monkeypatch.setenv("NETLAB_RUN_ROOT", str(root))
    capabilities.forget_cached()
    return root


@pytest.fixture
def own_netns() -> Iterator[str]:
    """An empty namespace named with this engineer's prefix, removed whatever happens."""
    name = f"{TEST_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    netns.create(name)
    try:
        yield name
    finally:
        netns.remove(name)


def _probe_namespaces_of_this_process() -> list[str]:
    prefix = f"{capabilities.PROBE_NAMESPACE_PREFIX}{os.getpid()}-"
    try:
        return sorted(n for n in os.listdir(capabilities.NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


@pytest.fixture
def probe_namespaces() -> Callable[[], list[str]]:
    """Lists this process's probe namespaces (other processes may probe meanwhile)."""
    return _probe_namespaces_of_this_process
