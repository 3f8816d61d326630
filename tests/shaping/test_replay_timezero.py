"""One time zero: every link of a lab counts its trace from the instant it is handed.

Read back from what the links themselves logged: the kernel replayers' log
headers and first changes, the user-space links' clock records and the change
log of a rate trace (its first change after the restart is the trace's t = 0).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from netlab.lab import lifecycle
from netlab.lab.replay import start_kernel_replays
from netlab.scenario.model import Direction, Link
from shaping.replay import read_replay_log
from shaping.spec import LinkShape, QueueLimit
from shaping.userlink import read_change_log
from tests.lab.scenarios import scenario, unique_lab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a lab")

TRACES = Path(__file__).resolve().parents[2] / "traces"
MAHIMAHI = str(TRACES / "cellular" / "verizon-lte-short.up")
LEAD_NS = 300_000_000
#: A rate trace (a schedule of changes) with no delay: the kernel here has no netem.
STEPS = ('{"type": "video", "uplink": {"trace_pattern": [{"duration": 200, "capacity": 2000},'
         ' {"duration": 300, "capacity": 4000}]}}')


@pytest.mark.parametrize("backend", ["user", "kernel"])
def test_every_link_of_a_two_link_lab_starts_its_trace_at_the_zero_it_is_given(
        backend: str, tmp_path: Path) -> None:
    (tmp_path / "steps.json").write_text(STEPS)
    mahimahi = Direction(LinkShape(queue=QueueLimit(packets=50)), trace=MAHIMAHI)
    rates = Direction(LinkShape(queue=QueueLimit(packets=50)), trace=str(tmp_path / "steps.json"))
    lab = lifecycle.up(scenario(unique_lab(f"tz{backend[0]}"), ["alice", "router", "bob"], [
        Link("access", "alice", "router", mahimahi, rates),
        Link("core", "router", "bob", rates, mahimahi),
    ]), backend=backend)
    try:
        time.sleep(0.5)  # the links run before the zero: it must restart them, not start them
        replays = None
        if backend == "kernel":  # ready, each waiting for its start
            replays = start_kernel_replays(lab.plan, lab.journal, netem=False, base_dir=None,
                                           duration_s=0.5)
        zero = time.monotonic_ns() + LEAD_NS
        zeros: dict[str, int] = {}
        late_ms: dict[str, float] = {}
        if backend == "user":
            handles = dict(lab.shaping.user_links)
            for handle in handles.values():
                handle.restart_trace(zero)
            time.sleep(LEAD_NS / 1e9 + 0.3)
            records = {name: handle.clock_record() for name, handle in handles.items()}
            lab.shaping.stop()  # the links flush their logs on exit
            for name, handle in handles.items():
                record = records[name]
                assert record is not None, name
                zeros[f"{name} clock"] = record["trace_zero_ns"]
                assert record["received_ns"] < zero, "the zero arrived after it came"
                side = "b_to_a" if name == "access" else "a_to_b"  # the rate-trace side
                changes = read_change_log(handle.log_paths()[f"{side}_changes"])
                restarted = changes[changes["scheduled_ns"] >= zero]
                zeros[f"{name} {side} first change"] = int(restarted["scheduled_ns"][0])
                late_ms[name] = (int(restarted["applied_ns"][0]) - zero) / 1e6
        else:
            assert replays is not None
            replays.start_at(zero)
            for replay in replays.replays:
                replay.handle.wait(10)
            logs = {(r.link, r.direction): r.log_path for r in replays.replays}
            replays.stop()
            for key, path in logs.items():
                log = read_replay_log(path)
                zeros[" ".join(key)] = log.start_ns
                zeros[f"{' '.join(key)} first change"] = int(log.changes["scheduled_ns"][0])
                late_ms[" ".join(key)] = (int(log.changes["applied_ns"][0]) - zero) / 1e6
    finally:
        lab.down()
    assert len(zeros) >= 4
    assert set(zeros.values()) == {zero}, zeros
    # Each took its first change at the zero, give or take a wake-up; under a
    # heavy load a link may wake late, but never before its zero.
    assert all(0 <= value < 50 for value in late_ms.values()), late_ms
