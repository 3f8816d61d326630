"""Malformed frames thrown at a live agent: it answers with ERROR frames and
keeps serving a valid client correctly (and stays up)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from endpoints.agent_client import AgentClient
from netlab.agent import frames
from netlab.agent.checkpoints import load_policy
from tests.netlab.agent.conftest import ONL_CHECKPOINT, RunningAgent

header_fields = st.tuples(
    st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 3),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(-(2**63), 2**63 - 1),
    st.floats(width=32))


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["random", "header", "valid_kind", "oversized"]))
    if shape == "random":
        return draw(st.binary(min_size=1, max_size=200))
    if shape == "oversized":
        return b"\1" * draw(st.integers(frames.MAX_FRAME + 1, frames.MAX_FRAME + 5000))
    version, kind, flags, flow, seq, count, t_ns, value = draw(header_fields)
    if shape == "valid_kind":
        version, kind = frames.VERSION, draw(st.sampled_from(list(frames.Kind)))
    body = draw(st.binary(max_size=64))
    return struct.pack("<BBHIIIqf", version, kind, flags, flow, seq, count, t_ns, value) + body


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(path)
    sock.setblocking(False)
    return sock


def test_agent_survives_malformed_frames(start_agent: Callable[..., RunningAgent]) -> None:
    agent = start_agent()
    reference = load_policy(ONL_CHECKPOINT)
    valid = AgentClient(agent.socket, policy="rtc-onl4", obs_size=4, action_size=1)
    fuzzer = {"sock": _connect(str(agent.socket))}
    rng = np.random.default_rng(3)

    def check_valid_client() -> None:
        obs = np.array([rng.uniform(0, 8e6), rng.uniform(0, 300), rng.uniform(0, 0.3),
                        rng.uniform(1e4, 8e6)], dtype=np.float32)
        decision = valid.decide(obs, wait_s=5.0)  # correctness here, latency elsewhere
        assert decision.action is not None, valid.summary()["last_error"]
        expected = reference.act(obs.reshape(1, 4), [None], explore=False).actions[0]
        np.testing.assert_allclose(decision.action, expected, rtol=1e-6)

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(batch=st.lists(hostile_frames(), min_size=1, max_size=8))
    def throw(batch: list[bytes]) -> None:
        for data in batch:
            try:
                fuzzer["sock"].send(data)
            except BlockingIOError:
                pass  # we never read the agent's ERROR replies: its buffer toward us fills
            except OSError:
                fuzzer["sock"].close()  # too long for a datagram, or the agent hung up on us
                fuzzer["sock"] = _connect(str(agent.socket))
        check_valid_client()

    try:
        throw()
        # out-of-order and undeclared flows on the valid client's own connection
        assert valid.sock is not None
        valid.sock.send(frames.observe(valid.flow, 1, 0, [0, 0, 0, 0]))  # seq far behind
        valid.sock.send(frames.observe(valid.flow + 1, 99, 0, [0, 0, 0, 0]))  # no HELLO
        valid.sock.send(frames.observe(valid.flow, valid.seq + 50, 0, [0, 0, 0]))  # 3 values
        check_valid_client()
        assert valid.stats.errors >= 2  # the refusals came back as ERROR frames
        assert agent.proc.poll() is None
    finally:
        fuzzer["sock"].close()
        valid.close()
    agent.stop()
    assert agent.proc.returncode == 0
    stats = agent.stats.read_text()
    for code in ("MALFORMED", "OUT_OF_ORDER", "NO_HELLO", "MISMATCH"):
        assert code in stats
