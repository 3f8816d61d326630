"""One time zero for a whole run: every link's trace and every flow start from it.

A real two-link lab (alice - router - bob, a Mahimahi trace on every
direction) with three flows started at 0, 1 and 2 s, run with ``netlab run``
on both backends and with ``netlab up -d``.  The offsets are read from what
each part logged itself: the replayers' log headers and first changes, the
user-space links' clock records, the senders' metadata and their first
packet.  The bounds are generous (this machine is shared); a part that
started from its own clock instead of the run's is off by hundreds of ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from endpoints.rtc import logs as rtc_logs
from endpoints.tcp.logs import SENDER_META_FILE
from netlab.run.kinds import kind_of
from tests.cli.runs import netlab_run
from tests.lab.scenarios import unique_lab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a lab")

NETLAB = [sys.executable, "-m", "netlab.cli.main"]
#: A link applies its first change, or a sender sends its first packet, within
#: this of the instant it was given (a FIFO replayer: well under 1 ms idle).
LATE_LIMIT_MS = 50.0

SCENARIO = """
name: {name}
duration: 4s
hosts: [alice, router, bob]
links:
  - endpoints: [alice, router]
    up: {{trace: cellular/verizon-lte-short.up, queue: 60pkt}}
    down: {{trace: cellular/verizon-lte-short.down, queue: 60pkt}}
  - endpoints: [router, bob]
    up: {{trace: cellular/tmobile-lte-short.up, queue: 60pkt}}
    down: {{trace: cellular/tmobile-lte-short.down, queue: 60pkt}}
flows:
  - {{kind: rtc, from: alice, to: bob, estimator: "fixed:800kbit"}}
  - {{kind: rtc, from: bob, to: alice, estimator: "fixed:500kbit", start: 1s}}
  - {{kind: tcp, from: alice, to: bob, start: 2s, stop: 3.5s}}
"""


def _check_clock(results: dict[str, Any], backend: str) -> None:
    clock = results["clock"]
    zero = clock["trace_zero_ns"]
    assert zero == clock["start_monotonic_ns"]
    links = clock["links"]
    if backend == "kernel":
        assert len(links) == 4, links
        for entry in links:
            assert entry["trace_zero_ns"] == zero and entry["offset_ms"] == 0, entry
            assert 0 <= entry["first_change_late_ms"] < LATE_LIMIT_MS, entry
    else:
        assert len(links) == 2, links
        for entry in links:
            assert entry["trace_zero_ns"] == zero and entry["offset_ms"] == 0, entry
            assert entry["received_before_ms"] > 0, entry  # it had the zero before it came
    flows = {entry["flow"]: entry for entry in clock["flows"]}
    assert len(flows) == 3, flows
    for flow in results["flows"]:
        entry = flows[flow["id"]]
        assert entry["given_offset_ms"] == 0, entry  # zero + start exactly
        assert flow["started_s"] == pytest.approx(flow["start_s"], abs=1e-3), flow
        if flow["kind"] == "rtc":
            assert 0 <= entry["started_offset_ms"] < LATE_LIMIT_MS, entry
            # The first packet on the wire, from the sender's own packet log.
            sent = rtc_logs.read_kind(Path(flow["logs"]) / "sender", rtc_logs.SENDER_PACKETS)
            first_ms = (int(sent["send_ns"].min()) - zero) / 1e6 - flow["start_s"] * 1e3
            assert 0 <= first_ms < LATE_LIMIT_MS, (flow["id"], first_ms)
        else:  # connects at its start: the offset includes the handshake over the trace
            meta = json.loads((Path(flow["logs"]) / "sender" / SENDER_META_FILE).read_text())
            assert meta["start_at_ns"] == zero + round(flow["start_s"] * 1e9)


@pytest.mark.parametrize("backend", ["kernel", "user"])
def test_a_run_hands_one_time_zero_to_every_link_and_flow(tmp_path: Path, backend: str) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO.format(name=unique_lab(f"tzr{backend[0]}")))
    _, results = netlab_run(scenario, tmp_path / "runs", "--backend", backend)
    assert results["backend"] == backend
    _check_clock(results, backend)


def test_up_detached_hands_the_same_time_zero(tmp_path: Path) -> None:
    name = unique_lab("tzd")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO.format(name=name))
    out = tmp_path / "runs"
    try:
        subprocess.run([*NETLAB, "up", "-d", "-q", "--no-plots", "--backend", "kernel", "--out",
                        str(out), str(scenario)], check=True, capture_output=True, timeout=180)
        (run_dir,) = out.iterdir()
        deadline = time.monotonic() + 60
        while not (run_dir / "results.json").exists():  # written when the flows end
            assert time.monotonic() < deadline, "the detached run wrote no results"
            time.sleep(0.2)
    finally:
        subprocess.run([*NETLAB, "down", name], check=False, capture_output=True, timeout=180)
    results = json.loads((run_dir / "results.json").read_text())
    _check_clock(results, "kernel")


def test_the_senders_metadata_files_are_the_kinds() -> None:
    assert kind_of("tcp").sender_meta == SENDER_META_FILE
    assert kind_of("rtc").sender_meta == "sender_meta.json"
