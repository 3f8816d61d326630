"""Misuse is reported with what, where and the fix, and exit status 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from endpoints.tcp.common import available_congestion_controls

from .conftest import REPO


def _sender(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "endpoints.tcp.sender_app",
                           "--log-dir", str(tmp_path / "s"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unknown_congestion_control(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = _sender(tmp_path, "--dest", f"127.0.0.1:{port}", "--cc", "nosuchcc",
                         "--duration", "1")
    assert result.returncode == 2
    assert "nosuchcc" in result.stderr and "where: --cc" in result.stderr
    for name in available_congestion_controls():
        assert name in result.stderr


def test_no_receiver(tmp_path: Path) -> None:
    result = _sender(tmp_path, "--dest", f"127.0.0.1:{_free_port()}", "--duration", "1",
                     "--connect-timeout", "0.3")
    assert result.returncode == 2
    assert "cannot connect" in result.stderr and "start the receiver first" in result.stderr


def test_bad_mode_and_address(tmp_path: Path) -> None:
    result = _sender(tmp_path, "--dest", "127.0.0.1:1", "--mode", "turbo", "--duration", "1")
    assert result.returncode == 2 and "where: --mode" in result.stderr
    result = _sender(tmp_path, "--dest", "nowhere", "--duration", "1")
    assert result.returncode == 2 and "where: --dest" in result.stderr


def test_pacing_path_that_is_not_a_socket(tmp_path: Path) -> None:
    occupied = tmp_path / "file"
    occupied.write_text("mine")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = _sender(tmp_path, "--dest", f"127.0.0.1:{port}", "--duration", "1",
                         "--pacing-control", str(occupied))
    assert result.returncode == 2 and "not a socket" in result.stderr
    assert occupied.read_text() == "mine"
