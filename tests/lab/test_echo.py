"""The echo probe measures the path, not this process's wake-ups.

Links on the kernel backend have their added delay checked by echo RTTs
(half the idle RTT minus the asked one-way delay, against a 1 ms limit). The
echo client and reflector are threads of the run's own process, so a busy
thread beside them makes each wait its turn for the GIL: several ms that the
link never added. With kernel arrival stamps and the reflector's hold taken
off (TWAMP, RFC 5357), a busy process still reads an unshaped veth's RTT.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from netlab.lab import lifecycle, netns
from netlab.probes.echo import FOLLOW_UP_WAIT_S, EchoServers, ping
from netlab.scenario.model import Direction, Link
from shaping.spec import LinkShape
from tests.lab.scenarios import scenario, unique_lab


@pytest.fixture
def pair() -> Iterator[lifecycle.Lab]:
    plain = Direction(LinkShape())
    lab = lifecycle.up(scenario(unique_lab("tec"), ["alice", "bob"],
                                [Link("wire", "alice", "bob", plain, plain)]))
    yield lab
    lab.down()


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))  # pure Python: holds the GIL for whole switch intervals


def test_echo_rtt_leaves_out_this_process_being_busy(pair: lifecycle.Lab) -> None:
    alice, bob = pair.plan.hosts["alice"], pair.plan.hosts["bob"]
    stop = threading.Event()
    hogs = [threading.Thread(target=_spin, args=(stop,), daemon=True) for _ in range(2)]
    for hog in hogs:
        hog.start()
    try:
        with EchoServers([bob.namespace]):
            began = time.monotonic()
            echo = ping(alice.namespace, str(bob.address), count=40, interval_s=0.002)
            wall_s = time.monotonic() - began
    finally:
        stop.set()
        for hog in hogs:
            hog.join()
    assert echo.received == 40
    # the run itself was slowed: each request and reply waited for the GIL
    assert wall_s > 40 * 0.002 + 0.05, wall_s
    assert max(echo.rtts_s) < 0.001, sorted(echo.rtts_s)[-5:]


def test_a_plain_rfc862_echo_is_timed_end_to_end(pair: lifecycle.Lab) -> None:
    """A reflector that only echoes (no hold, no follow-up) still gives RTTs:
    arrival minus send, without waiting for a follow-up that never comes."""
    alice, bob = pair.plan.hosts["alice"], pair.plan.hosts["bob"]
    server = netns.call_inside(bob.namespace,
                               lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    server.bind(("0.0.0.0", 7007))
    server.settimeout(0.2)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            try:
                data, peer = server.recvfrom(2048)
            except TimeoutError:
                continue
            time.sleep(0.003)  # a slow echo: its hold is the path's, as far as anyone knows
            server.sendto(data, peer)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    try:
        began = time.monotonic()
        result = ping(alice.namespace, str(bob.address), count=10, interval_s=0.001, port=7007)
        wall_s = time.monotonic() - began
    finally:
        stop.set()
        thread.join()
        server.close()
    assert result.received == 10
    assert all(0.003 <= rtt < 0.05 for rtt in result.rtts_s), result.rtts_s
    assert wall_s < 10 * (0.001 + 0.003 + FOLLOW_UP_WAIT_S), wall_s  # no follow-up awaited
