"""A third host of the lab forges RTP to the receiver before the call (bait for a
receiver that latches onto the first source) and during it (with the call's own
SSRC), and REMB to the sender: both endpoints drop and count every forged
datagram, and the call's statistics are those of the call."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from endpoints.rtc import logs
from endpoints.rtc.rtcp import Remb, encode_compound
from netlab.lab import netns, state
from tests.lab.scenarios import unique_lab

EARLY_RTP, FORGED_RTP, FORGED_REMB = 50, 300, 100  # a REMB every 3rd forged RTP


def _meta(out: Path, pattern: str, proc: subprocess.Popen[str],
          timeout_s: float = 30.0) -> dict[str, Any]:
    """An endpoint's meta file, once it is written (the endpoint is running)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = list(out.glob(pattern))
        if found:
            try:
                data: dict[str, Any] = json.loads(found[0].read_text())
                return data
            except ValueError:
                pass  # being replaced
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.02)
    raise AssertionError(f"{pattern} did not appear")


def _forge(sock: socket.socket, count: int, receiver: tuple[str, int], ssrc: int,
           sender: tuple[str, int] | None = None) -> None:
    """Forged RTP (sequence numbers far ahead) and, to ``sender``, a forged REMB of
    50 kbit/s every ``count // FORGED_REMB`` packets."""
    remb = encode_compound([Remb(0x0BAD0BAD, 50_000, (ssrc,))])
    for i in range(count):
        rtp = struct.pack("!BBHII", 0x80, 96, (30_000 + 97 * i) & 0xFFFF, i * 3000, ssrc)
        sock.sendto(rtp + bytes(200), receiver)
        if sender is not None and i % (count // FORGED_REMB) == 0:
            sock.sendto(remb, sender)
        time.sleep(0.005)


def test_forged_rtp_and_rtcp_from_a_third_host_are_dropped_and_counted(
        tmp_path: Path) -> None:
    name = unique_lab("fgd")
    scenario = tmp_path / "forged.yaml"
    scenario.write_text(f"""
name: {name}
duration: 7s
hosts: [alice, mallory, router, bob]
links:
  - endpoints: [alice, router]
  - endpoints: [mallory, router]
  - endpoints: [router, bob]
    rate: 20Mbit
flows:
  - kind: rtc
    from: alice
    to: bob
    estimator: fixed:1Mbit
    start: 1s
""")
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "netlab.cli.main", "run", "-q", "--no-plots",
                             "--out", str(out), str(scenario)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        received = _meta(out, "*/flows/rtc-0/receiver/receiver_meta.json", proc)
        recorded = state.load(name)
        assert recorded is not None
        mallory = recorded.hosts["mallory"]["namespace"]
        with netns.call_inside(mallory, lambda: socket.socket(socket.AF_INET,
                                                              socket.SOCK_DGRAM)) as sock:
            # first RTP source the receiver hears, before the call starts: latching bait
            receiver_address = tuple(received["bound_address"])
            _forge(sock, EARLY_RTP, receiver_address, 0x5EED5EED)
            sent = _meta(out, "*/flows/rtc-0/sender/sender_meta.json", proc)
            peer = recorded.hosts["alice"]["interfaces"][0]["address"].split("/")[0]
            _forge(sock, FORGED_RTP, receiver_address, sent["video_ssrc"],
                   (peer, sent["bound_address"][1]))
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run([sys.executable, "-m", "netlab.cli.main", "down", name],
                       capture_output=True, check=False)
    assert proc.returncode == 0, stderr

    (run_dir,) = out.iterdir()
    flow_dir = run_dir / "flows" / "rtc-0"
    receiver = json.loads((flow_dir / "receiver" / "receiver_meta.json").read_text())
    sender = json.loads((flow_dir / "sender" / "sender_meta.json").read_text())
    assert receiver["counters"]["foreign_packets"] == EARLY_RTP + FORGED_RTP
    assert sender["counters"]["foreign_datagrams"] == FORGED_REMB
    assert receiver["sender_address"][0] == peer  # latched onto the real sender
    assert len(receiver["counters"]["per_ssrc"]) == 2  # the call's audio and video only
    video = receiver["counters"]["per_ssrc"][f"{sent['video_ssrc']:08x}"]
    assert video["cumulative_lost"] == 0 and video["received"] == video["expected"], video
    rates = logs.read_kind(flow_dir / "sender", logs.SENDER_RATE)
    assert rates["target_bps"].min() >= 250_000  # no forged 50 kbit/s REMB was obeyed
    results = json.loads((run_dir / "results.json").read_text())
    metrics = results["flows"][0]["metrics"]
    assert (metrics["foreign_at_receiver"], metrics["foreign_at_sender"]) == (
        EARLY_RTP + FORGED_RTP, FORGED_REMB)  # reported in results.json too
    # the sender follows the receiver's 1 Mbit/s REMB from its 300 kbit/s start
    assert sender["final_target_bps"] == 1e6
    # (the rate itself depends on how soon the endpoints start on a loaded machine)
    assert metrics["loss"] == 0 and 1e5 < metrics["recv_rate_bps"] < 1.3e6, metrics
