"""Clients of a running agent: the decision client (re-exported from
:mod:`endpoints.agent_client`, where the endpoints import it) and a small
synchronous client of the control API for learners, tests and the CLI."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

import numpy.typing as npt

from endpoints.agent_client import AgentClient, ClientStats, Decision
from netlab.agent.transitions import from_npy

__all__ = ["AgentClient", "ClientStats", "ControlClient", "Decision"]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class ControlClient:
    """``health()``, ``stats()``, ``load(path)``, ``drain()`` over the control socket."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self.timeout_s = timeout_s

    def _request(self, method: str, url: str, body: Any = None) -> tuple[int, bytes]:
        connection = _UnixConnection(self.path, self.timeout_s)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, url, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def _json(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        status, data = self._request(method, url, body)
        answer: dict[str, Any] = json.loads(data)
        if status != 200:
            raise RuntimeError(f"{method} {url}: HTTP {status}: {answer.get('error')}")
        return answer

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def stats(self) -> dict[str, Any]:
        return self._json("GET", "/stats")

    def load(self, checkpoint: str | Path) -> dict[str, Any]:
        return self._json("POST", "/load", {"checkpoint": str(checkpoint)})

    def drain(self) -> npt.NDArray[Any]:
        status, data = self._request("POST", "/drain")
        if status != 200:
            raise RuntimeError(f"POST /drain: HTTP {status}")
        return from_npy(data)
