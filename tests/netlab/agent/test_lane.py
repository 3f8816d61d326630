"""The fast lane (netlab.agent.lane): a lone request of a plain policy is answered
as the policy's own ``act`` answers it and recorded as the general path records
it; every frame the general path refuses is still refused, and exploring agents
(which sample) never take the lane."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from endpoints import agent_protocol as proto
from endpoints.agent_client import AgentClient
from netlab.agent.checkpoints import load_policy
from netlab.agent.client import ControlClient
from netlab.agent.server import LANE_MAX_READY, Agent
from tests.netlab.agent.conftest import ONL_CHECKPOINT, RunningAgent


def _observations(n: int) -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.column_stack([rng.uniform(1e5, 9e6, n), rng.uniform(0, 400, n),
                            rng.uniform(0, 0.2, n), rng.uniform(1e5, 9e6, n)]
                           ).astype(np.float32)


def test_a_lone_request_is_answered_and_recorded_as_the_policy_decides(
        start_agent: Callable[..., RunningAgent]) -> None:
    agent = start_agent()
    policy = load_policy(ONL_CHECKPOINT)
    client = AgentClient(agent.socket, policy="rtc-onl4", obs_size=4, action_size=1,
                         deadline_s=2.0)
    observations = _observations(25)
    rewards = np.linspace(-1, 1, 25, dtype=np.float32)
    try:
        actions = []
        for i, (obs, reward) in enumerate(zip(observations, rewards, strict=True)):
            decision = client.decide(obs, reward=float(reward), done=i == 24)
            assert decision.action is not None, client.summary()["last_error"]
            actions.append(decision.action.copy())
    finally:
        client.close()
    want = [policy.act(obs.reshape(1, 4), [None], explore=False) for obs in observations]
    assert np.array_equal(np.array(actions), np.array([w.actions[0] for w in want]))
    control = ControlClient(agent.control)
    stats = control.stats()
    assert stats["decisions"] == 25
    # a wake-up that finds another descriptor ready too (the control thread's wake,
    # another connection) serves the general way, which must answer alike
    assert stats["lane_answers"] >= 20
    rows = control.drain()
    assert len(rows) == 25
    assert rows["seq"].tolist() == list(range(1, 26))
    assert np.array_equal(rows["obs"], observations)
    assert np.array_equal(rows["action"], np.array(actions))
    assert np.array_equal(rows["reward"], rewards)
    assert rows["done"].tolist() == [0] * 24 + [1]
    assert np.array_equal(rows["log_prob"], [w.log_prob[0] for w in want])
    assert np.array_equal(rows["value"], [w.value[0] for w in want])
    assert (rows["t_reply_ns"] >= rows["t_request_ns"]).all()


def test_what_the_general_path_refuses_the_lane_refuses(
        start_agent: Callable[..., RunningAgent]) -> None:
    """A known flow's bad OBSERVEs (the frames the lane looks at) get the same ERROR
    as before, change nothing, and the flow's next good request is answered in it."""
    agent = start_agent()
    good = proto.observe(1, 5, 0, [1e6, 20, 0.01, 1e6])
    cases = [
        (proto.observe(1, 1, 0, [1e6, float("nan"), 0.0, 1e6]), proto.ErrorCode.MALFORMED),
        (proto.observe(1, 1, 0, [1e6, 20, 0.0, 1e6], reward=float("inf")),
         proto.ErrorCode.MALFORMED),
        (proto.observe(1, 1, 0, [1e6, 20, 0.0, 1e6, 5.0]), proto.ErrorCode.MISMATCH),
        (proto.observe(1, 1, 0, [1e6, 20, 0.0, 1e6]) + b"\x00", proto.ErrorCode.MALFORMED),
        (proto.observe(2, 1, 0, [1e6, 20, 0.0, 1e6]), proto.ErrorCode.NO_HELLO),
        (good, None),
        (good, proto.ErrorCode.OUT_OF_ORDER),  # the same sequence again
        (proto.observe(1, 4, 0, [1e6, 20, 0.0, 1e6]), proto.ErrorCode.OUT_OF_ORDER),
    ]
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.connect(str(agent.socket))
        sock.settimeout(10)
        sock.send(proto.hello(1, "rtc-onl4", 4, 1))
        assert proto.decode(sock.recv(proto.MAX_FRAME)).kind is proto.Kind.HELLO_OK
        for data, code in cases:
            sock.send(data)
            reply = proto.decode(sock.recv(proto.MAX_FRAME))
            if code is None:
                assert reply.kind is proto.Kind.ACTION and reply.seq == 5
            else:
                assert reply.kind is proto.Kind.ERROR and reply.flags == code, reply
    assert ControlClient(agent.control).stats()["decisions"] == 1


def test_an_exploring_agent_samples_on_the_general_path(
        start_agent: Callable[..., RunningAgent]) -> None:
    agent = start_agent("--explore")
    client = AgentClient(agent.socket, policy="rtc-onl4", obs_size=4, action_size=1,
                         deadline_s=2.0)
    obs = _observations(1)[0]
    try:
        actions = {float(client.decide(obs).action[0]) for _ in range(10)}  # type: ignore[index]
    finally:
        client.close()
    assert len(actions) > 1  # sampled, not the mean
    stats = ControlClient(agent.control).stats()
    assert stats["decisions"] == 10 and stats["lane_answers"] == 0


def _ready_agent(tmp_path: Path, connections: int) -> tuple[Agent, list[socket.socket]]:
    """An agent driven by hand (no serving thread): ``connections`` flows said HELLO
    and were accepted; each has one OBSERVE waiting."""
    agent = Agent(load_policy(ONL_CHECKPOINT), tmp_path / "a.sock", warm="off")
    epoll = agent.transport.start()
    socks = []
    for flow in range(1, connections + 1):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect(str(agent.socket_path))
        sock.settimeout(5)
        sock.send(proto.hello(flow, "rtc-onl4", 4, 1))
        socks.append(sock)
    for _ in range(3):  # accept, then the HELLOs
        agent._dispatch(epoll.poll(0.5), polled=False)
    for sock in socks:
        assert proto.decode(sock.recv(proto.MAX_FRAME)).kind is proto.Kind.HELLO_OK
    for flow, sock in enumerate(socks, start=1):
        sock.send(proto.observe(flow, 1, 0, [1e6, 20.0 * flow, 0.01, 1e6]))
    return agent, socks


@pytest.mark.parametrize("ready", [2, LANE_MAX_READY, LANE_MAX_READY + 1])
def test_a_few_ready_connections_are_answered_in_the_lane_more_are_batched(
        tmp_path: Path, ready: int) -> None:
    agent, socks = _ready_agent(tmp_path, ready)
    try:
        events = agent.transport.epoll.poll(0.5)  # type: ignore[union-attr]
        assert len(events) == ready
        agent._dispatch(events, polled=False)
        for flow, sock in enumerate(socks, start=1):
            reply = proto.decode(sock.recv(proto.MAX_FRAME))
            assert (reply.kind, reply.flow, reply.seq) == (proto.Kind.ACTION, flow, 1)
        counters = agent.counters
        assert counters["decisions"] == ready
        lane = ready <= LANE_MAX_READY
        assert counters["lane_answers"] == (ready if lane else 0)
        assert counters["max_batch"] == (1 if lane else ready)
        assert len(agent.transitions) == ready
    finally:
        for sock in socks:
            sock.close()
        agent.transport.close()
