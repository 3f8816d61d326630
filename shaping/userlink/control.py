"""Live changes to a running link over a Unix datagram socket.

One datagram = one change, JSON: ``{"direction": "a_to_b", "shape": {...},
"scheduled_ns": N}``, or the run's time zero: ``{"restart_ns": N}`` (every
trace of the link counts from N again).  Datagrams keep message boundaries
without framing, a send never waits for the link process, and the process
polls the socket with its packet fds, so a change is applied on its next
wake-up (microseconds).
Any process (the lab's trace replayer included) can drive a link with
:class:`ControlClient` knowing only the socket path.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from shaping.spec import LinkShape

from .config import DIRECTIONS, DirectionName, shape_from_json, shape_to_json
from .errors import UserLinkError

MAX_DATAGRAM = 4096
MAX_SUN_PATH = 107  # sizeof(sockaddr_un.sun_path) - 1


def control_path(run_dir: Path, link_id: str) -> Path:
    path = run_dir / f"{link_id}.ctl"
    if len(str(path).encode()) > MAX_SUN_PATH:
        raise UserLinkError(
            f"control socket path is {len(str(path))} bytes, longer than a Unix socket allows",
            where=str(path),
            fix="use a shorter run directory or link id (at most 107 bytes in all)",
        )
    return path


def encode_change(direction: DirectionName, shape: LinkShape, scheduled_ns: int) -> bytes:
    return json.dumps(
        {"direction": direction, "shape": shape_to_json(shape), "scheduled_ns": scheduled_ns}
    ).encode()


def encode_restart(restart_ns: int) -> bytes:
    return json.dumps({"restart_ns": restart_ns}).encode()


def decode_message(data: bytes) -> tuple[DirectionName, LinkShape, int] | int:
    """A change, or the instant the traces restart from (an int); ValueError if malformed."""
    try:
        msg: dict[str, Any] = json.loads(data)
        if isinstance(msg, dict) and "restart_ns" in msg:
            return int(msg["restart_ns"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed control message: {exc}") from exc
    return decode_change(data)


def decode_change(data: bytes) -> tuple[DirectionName, LinkShape, int]:
    """Parse one datagram; ValueError says what is wrong with it."""
    try:
        msg: dict[str, Any] = json.loads(data)
        direction = msg["direction"]
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        return direction, shape_from_json(msg["shape"]), int(msg["scheduled_ns"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed change message: {exc}") from exc


class ControlClient:
    """Sends changes to one link process; cheap enough to call every millisecond."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def change(
        self, direction: DirectionName, shape: LinkShape, scheduled_ns: int | None = None
    ) -> None:
        when = time.monotonic_ns() if scheduled_ns is None else scheduled_ns
        self._send(encode_change(direction, shape, when))

    def restart(self, restart_ns: int) -> None:
        """Every trace of the link counts from ``restart_ns`` (CLOCK_MONOTONIC) on."""
        self._send(encode_restart(restart_ns))

    def _send(self, message: bytes) -> None:
        try:
            self.sock.sendto(message, self.path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise UserLinkError(
                "the user-space link process is not running",
                where=self.path,
                fix="start the link (start_link) before changing it; see its .stderr file",
            ) from exc

    def close(self) -> None:
        self.sock.close()
