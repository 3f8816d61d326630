"""labcore.netns: entering a real namespace, coming back, and never creating one."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from labcore import netns


def _own_inode() -> int:
    return os.stat(netns.THREAD_NETNS).st_ino


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"lcns-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_inside_enters_and_comes_back(namespace: str) -> None:
    home = _own_inode()
    target = os.stat(netns.path_of(namespace)).st_ino
    with netns.inside(namespace):
        assert _own_inode() == target
    assert _own_inode() == home


def test_a_socket_opened_inside_stays_there(namespace: str) -> None:
    sock = netns.call_inside(namespace, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    # only loopback exists there, and it is down: nothing can be sent, even to itself
    with sock, pytest.raises(OSError):
        sock.sendto(b"x", ("127.0.0.1", 9))


def test_in_thread_never_moves_the_callers_thread(namespace: str) -> None:
    home = _own_inode()
    seen = netns.in_thread(namespace, _own_inode)
    assert seen == os.stat(netns.path_of(namespace)).st_ino != home
    assert _own_inode() == home
    with pytest.raises(ZeroDivisionError):
        netns.in_thread(namespace, lambda: 1 // 0)


def test_a_missing_namespace_is_an_error_and_is_not_created() -> None:
    name = f"lcns-missing-{os.getpid()}"
    with pytest.raises(FileNotFoundError):
        netns.in_thread(name, lambda: None)
    assert netns.find(name) is None
    assert not Path(netns.path_of(name)).exists()
