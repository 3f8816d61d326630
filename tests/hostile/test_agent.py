"""Hostile agent clients: garbage, truncated and oversized frames, too many
connections, too many flows. A real agent process (4 GiB address space) answers
each with an ERROR frame, counts it, and keeps serving a valid client."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from endpoints.agent_client import AgentClient
from netlab.agent import frames
from netlab.agent.requests import MAX_FLOWS_PER_CONNECTION
from netlab.agent.transport import MAX_CONNECTIONS
from tests.hostile.conftest import REPO, _limit
from tests.netlab.agent.conftest import RunningAgent, wait_ready

CHECKPOINT = REPO / "models" / "opennetlab-pretrained.pth"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    tmp = tmp_path_factory.mktemp("agent")
    sock, control, stats, log = (tmp / "a.sock", tmp / "a.ctl", tmp / "stats.json",
                                 tmp / "a.out")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "netlab.agent", "--socket", str(sock), "--control",
             str(control), "--stats-out", str(stats), "--checkpoint", str(CHECKPOINT)],
            cwd=REPO, stdout=out, stderr=out, preexec_fn=_limit)
    running = RunningAgent(proc, sock, control, stats, log)
    try:
        wait_ready(sock, proc, log)
        yield running
    finally:
        running.stop()


def _connect(agent: RunningAgent) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(str(agent.socket))
    sock.settimeout(10)
    return sock


def _answer(sock: socket.socket, data: bytes) -> frames.Frame:
    sock.send(data)
    return frames.decode(sock.recv(frames.MAX_FRAME + 1))


def _still_serving(agent: RunningAgent) -> None:
    client = AgentClient(agent.socket, policy="rtc-onl4", obs_size=4, action_size=1)
    try:
        decision = client.decide(np.array([1e6, 50, 0.01, 1e6], dtype=np.float32), wait_s=5.0)
        assert decision.action is not None, client.summary()["last_error"]
    finally:
        client.close()
    assert agent.proc.poll() is None


HEADER = struct.Struct("<BBHIIIqf")
CASES: dict[str, tuple[bytes, frames.ErrorCode]] = {
    "garbage": (b"\xde\xad\xbe\xef" * 20, frames.ErrorCode.VERSION),
    "one-byte": (b"\x01", frames.ErrorCode.MALFORMED),
    "truncated-header": (frames.hello(1, "rtc-onl4", 4, 1)[:20], frames.ErrorCode.MALFORMED),
    "truncated-vector": (frames.observe(1, 1, 0, [1, 2, 3, 4])[:-3], frames.ErrorCode.MALFORMED),
    "count-lies": (HEADER.pack(1, 3, 0, 1, 1, 1_000_000_000, 0, 0.0),
                   frames.ErrorCode.OVERSIZED),
    "wrong-version": (HEADER.pack(99, 1, 0, 1, 0, 0, 0, 0.0), frames.ErrorCode.VERSION),
    "unknown-kind": (HEADER.pack(1, 77, 0, 1, 0, 0, 0, 0.0), frames.ErrorCode.UNKNOWN_KIND),
    "reply-kind": (frames.encode(frames.Kind.ACTION, 1, 1, 0, [0.5]),
                   frames.ErrorCode.UNKNOWN_KIND),
    "observe-before-hello": (frames.observe(7, 1, 0, [1, 2, 3, 4]), frames.ErrorCode.NO_HELLO),
    "hello-wrong-sizes": (frames.hello(1, "rtc-onl4", 4000, 1), frames.ErrorCode.MISMATCH),
    "hello-bad-utf8": (HEADER.pack(1, 1, 0, 1, 0, 2, 0, 0.0) + struct.pack("<2f", 4, 1)
                       + b"\xff\xfe", frames.ErrorCode.MALFORMED),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_frame_is_refused_and_the_agent_serves_on(agent: RunningAgent,
                                                           case: str) -> None:
    data, code = CASES[case]
    with _connect(agent) as sock:
        reply = _answer(sock, data)
    assert reply.kind is frames.Kind.ERROR and reply.flags == code, reply
    assert reply.text
    _still_serving(agent)


def test_oversized_frame_cannot_reach_the_agent_whole(agent: RunningAgent) -> None:
    with _connect(agent) as sock:
        reply = _answer(sock, b"\x01" * (frames.MAX_FRAME + 100))
    assert reply.kind is frames.Kind.ERROR and reply.flags == frames.ErrorCode.OVERSIZED
    _still_serving(agent)


def test_too_many_flows_on_one_connection_are_refused(agent: RunningAgent) -> None:
    with _connect(agent) as sock:
        for flow in range(1, MAX_FLOWS_PER_CONNECTION + 1):
            assert _answer(sock, frames.hello(flow, "rtc-onl4", 4, 1)).kind is \
                frames.Kind.HELLO_OK
        again = _answer(sock, frames.hello(1, "rtc-onl4", 4, 1))  # a flow it has: fine
        assert again.kind is frames.Kind.HELLO_OK
        extra = _answer(sock, frames.hello(MAX_FLOWS_PER_CONNECTION + 1, "rtc-onl4", 4, 1))
    assert extra.kind is frames.Kind.ERROR and extra.flags == frames.ErrorCode.LIMIT
    assert f"at most {MAX_FLOWS_PER_CONNECTION} flows" in extra.text
    _still_serving(agent)


def test_too_many_connections_are_refused(agent: RunningAgent) -> None:
    held: list[socket.socket] = []
    try:
        refused = None
        for _ in range(MAX_CONNECTIONS + 5):
            sock = _connect(agent)
            held.append(sock)
            with contextlib.suppress(BrokenPipeError):  # refused before it could ask
                sock.send(frames.hello(1, "rtc-onl4", 4, 1))
            reply = frames.decode(sock.recv(frames.MAX_FRAME + 1))
            if reply.kind is frames.Kind.ERROR:
                refused = reply
                assert sock.recv(16) == b""  # and it hangs up
                break
        assert refused is not None and refused.flags == frames.ErrorCode.LIMIT
        assert f"at most {MAX_CONNECTIONS} connections" in refused.text
        assert len(held) == MAX_CONNECTIONS + 1
    finally:
        for sock in held:
            sock.close()
    _still_serving(agent)


def test_refusals_are_counted_in_the_agent_stats(agent: RunningAgent) -> None:
    with _connect(agent) as sock:  # at least one of each, whatever ran before
        _answer(sock, b"\x01")
    agent.stop()
    assert agent.proc.returncode == 0
    stats = json.loads(agent.stats.read_text())
    assert stats["errors"]["MALFORMED"] >= 1
    assert "refused_connections" in stats and "refused_flows" in stats
    assert "Traceback" not in agent.log.read_text()
