"""The endpoint-side agent client without an agent, and OpenNetLab's 60 ms window."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from endpoints import agent_protocol as proto
from endpoints.agent_client import AgentClient
from endpoints.agent_rtc import OnlPacketWindow, parse_policy_argument
from endpoints.rtc.errors import PluginError


def test_no_agent_means_bounded_misses_and_counted_fallback(tmp_path: Path) -> None:
    client = AgentClient(tmp_path / "nobody.sock", policy="rtc-onl4", obs_size=4,
                         action_size=1, deadline_s=0.001, reconnect_interval_s=0.05)
    started = time.monotonic()
    for _ in range(20):
        assert client.decide([1.0, 2.0, 3.0, 4.0]).action is None
    assert time.monotonic() - started < 0.5  # nothing waited for an absent agent
    time.sleep(0.05)
    summary = client.summary()
    assert summary["misses"] == 20 and summary["timely"] == 0
    assert summary["in_fallback"] and summary["fallback_s"] >= 0.045  # from the 1st deadline
    assert "connect" in (summary["last_error"] or "")


def test_reply_for_another_sequence_is_late_not_applied(tmp_path: Path) -> None:
    """A hand-driven peer on a real SEQPACKET socket answers the wrong sequence first."""
    path = tmp_path / "peer.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    listener.listen(1)
    try:
        client = AgentClient(path, policy="x", obs_size=1, action_size=1, deadline_s=0.2)
        peer, _ = listener.accept()
        with peer:
            hello = proto.decode(peer.recv(proto.MAX_FRAME))
            assert hello.kind is proto.Kind.HELLO and hello.text == "x"
            seq = client.send([5.0])
            request = proto.decode(peer.recv(proto.MAX_FRAME))
            assert request.seq == seq and request.vector.tolist() == [5.0]
            peer.send(proto.encode(proto.Kind.ACTION, client.flow, seq + 7, request.t_ns, [1]))
            peer.send(proto.encode(proto.Kind.ACTION, client.flow, seq, request.t_ns, [2]))
            decision = client._read(seq, time.monotonic_ns() + 200_000_000)
        assert decision is not None and decision.action is not None
        assert decision.action.tolist() == [2.0]
        assert client.stats.late_replies == 1
        client.close()
    finally:
        listener.close()


def _stats(arrival: int, send: int, seq: int, size: int = 1000, ssrc: int = 1) -> dict[str, int]:
    return {"arrival_time_ms": arrival, "send_time_ms": send, "sequence_number": seq,
            "ssrc": ssrc, "payload_size": size, "payload_type": 96, "header_length": 24,
            "padding_length": 0}


def test_onl_window_matches_packet_record_rules() -> None:
    window = OnlPacketWindow()
    window.on_packet(_stats(1000, 900, 10), 5e5)  # first one-way delay 100 ms: the zero
    window.on_packet(_stats(1030, 920, 11), 5e5)  # +10 ms
    window.on_packet(_stats(1050, 930, 14), 6e5)  # +20 ms, 2 lost before it
    rate, delay, loss, last = window.state()
    assert rate == pytest.approx(3 * 1000 * 8 / 60 * 1000)
    assert delay == pytest.approx((0 + 10 + 20) / 3)
    assert loss == pytest.approx(2 / (2 + 3))
    assert last == 6e5
    window.on_packet(_stats(1100, 1000, 15), 7e5)  # 1000 and 1030 fall out (<= 1100 - 60)
    rate, delay, loss, last = window.state()
    assert rate == pytest.approx(2 * 1000 * 8 / 60 * 1000)
    assert delay == pytest.approx((20 + 0) / 2)
    assert loss == pytest.approx(2 / 4)
    assert len(window.packets) == 2


def test_policy_argument_parsing() -> None:
    path, options = parse_policy_argument("/run/x.sock?deadline=500us&fallback=gcc&flow=3")
    assert path == "/run/x.sock" and options == {"deadline": "500us", "fallback": "gcc",
                                                 "flow": "3"}
    with pytest.raises(PluginError):
        parse_policy_argument("/run/x.sock?colour=blue")


def test_polling_for_a_reply_never_waits_past_the_deadline(tmp_path: Path) -> None:
    """A peer that never answers: each decision gives up at its deadline, and after a
    poll that ran out the client sleeps instead of polling (back-off)."""
    path = tmp_path / "mute.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    listener.listen(1)
    try:
        client = AgentClient(path, policy="x", obs_size=1, action_size=1, deadline_s=0.002,
                             spin_s=0.001)
        peer, _ = listener.accept()
        with peer:
            for _ in range(5):
                started = time.monotonic_ns()
                assert client.decide([1.0]).action is None
                assert time.monotonic_ns() - started < 2_000_000 + 20_000_000
            assert client.stats.misses == 5
            # one poll of at most 1 ms ran out; the next four decisions slept instead
            assert 0 < client.stats.spin_s <= 0.001 + 0.0005
        client.close()
    finally:
        listener.close()


def test_negative_spin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        AgentClient(tmp_path / "x.sock", policy="x", obs_size=1, action_size=1, spin_s=-1)


def test_round_trip_times_are_a_bounded_ring_kept_oldest_first() -> None:
    from endpoints.agent_client import LatencyRing

    ring = LatencyRing(capacity=4)
    assert ring.recent() == [] and len(ring) == 0
    for value in (1.04, 2.0, 3.0):
        ring.append(value)
    assert ring.recent() == [1.0, 2.0, 3.0]
    for value in (4.0, 5.0, 6.0):
        ring.append(value)
    assert ring.recent() == [3.0, 4.0, 5.0, 6.0] and len(ring) == 4 and ring.total == 6
