"""A real replay: htb on a veth between two namespaces, a saturating TCP flow, 10 ms steps."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shaping.errors import ShapingError
from shaping.fidelity import kernel_direction
from shaping.replay import constant_steps, read_replay_log, start_replayer
from shaping.spec import LinkShape, QueueLimit

NS_A, NS_B = "nltg-rt-a", "nltg-rt-b"
IF_A, IF_B = "nltg-rta", "nltg-rtb"
ADDR_B = "10.233.0.2"

pytestmark = pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


@pytest.fixture
def veth_pair() -> Iterator[None]:
    try:
        _ip("netns", "add", NS_A)
        _ip("netns", "add", NS_B)
        _ip("link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_B,
            "netns", NS_B)
        for ns, ifname, addr in ((NS_A, IF_A, "10.233.0.1"), (NS_B, IF_B, ADDR_B)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", ifname)
            _ip("-n", ns, "link", "set", ifname, "up")
        yield
    finally:
        for ns in (NS_A, NS_B):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)


def _qdiscs(ns: str, ifname: str) -> list[dict[str, object]]:
    out = subprocess.run(["ip", "netns", "exec", ns, "tc", "-s", "-j", "qdisc", "show", "dev",
                          ifname], capture_output=True, text=True, check=True).stdout
    result: list[dict[str, object]] = json.loads(out)
    return result


def test_replay_keeps_time_and_never_replaces_the_qdisc(veth_pair: None, tmp_path: Path) -> None:
    schedule = constant_steps([4_000_000, 12_000_000], 0.010,
                              LinkShape(queue=QueueLimit(packets=300)))
    log_path = tmp_path / "a.replay"
    handle = start_replayer(NS_A, IF_A, "htb", schedule, None, log_path,
                            start_ns=time.monotonic_ns() + 1_000_000_000)
    server = client = None
    try:
        server = subprocess.Popen(["ip", "netns", "exec", NS_B, "iperf3", "-s", "-1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        client = subprocess.Popen(["ip", "netns", "exec", NS_A, "iperf3", "-c", ADDR_B, "-t",
                                   "5"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3.7)
        assert handle.running()
        stopped_ns = time.monotonic_ns()
        done = handle.stop()
    finally:
        handle.stop()
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert done.reason == "stopped" and done.returncode == 0
    assert handle.priority.split(",")[0] in ("fifo", "nice", "none")
    log = read_replay_log(log_path)
    changes, samples = log.changes, log.samples
    expected = (stopped_ns - handle.start_ns) // 10_000_000 + 1  # one change per 10 ms
    assert expected - 3 <= len(changes) <= expected + 3
    errors_ms = (changes["applied_ns"] - changes["scheduled_ns"]) / 1e6
    assert np.all(errors_ms >= 0)
    assert np.percentile(errors_ms, 50) < 1.0
    assert np.percentile(errors_ms, 99) < 20.0  # generous: other work shares 2 vCPUs
    # The qdisc was changed in place: its counters never restarted, and the
    # same htb root still holds them after the replay.
    assert len(samples) >= 250
    assert np.all(np.diff(samples["bytes"]) >= 0) and np.all(np.diff(samples["packets"]) >= 0)
    assert samples["bytes"][-1] - samples["bytes"][0] > 1_000_000
    root = next(q for q in _qdiscs(NS_A, IF_A) if q["kind"] == "htb")
    assert root["handle"] == "1:"
    assert int(str(root["bytes"])) >= int(samples["bytes"][-1])
    # The delivered rate followed the 8 Mbit/s mean of the alternating steps.
    entry = kernel_direction("a-b", "a_to_b", log)
    assert entry.capacity_bins >= 3
    assert entry.capacity_mape is not None and entry.capacity_mape < 0.15


def test_a_missing_interface_fails_with_what_where_and_fix(veth_pair: None,
                                                           tmp_path: Path) -> None:
    schedule = constant_steps([1_000_000], 0.1, LinkShape())
    with pytest.raises(ShapingError) as caught:
        start_replayer(NS_A, "nltg-nothere", "htb", schedule, None, tmp_path / "x.replay")
    assert "did not start" in caught.value.what
    assert caught.value.where is not None and "nltg-nothere" in caught.value.where
    assert caught.value.fix
