"""The deadline clock and the replay loop, timed on the real monotonic clock."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shaping.replay import (
    ReplayLogWriter,
    constant_steps,
    read_replay_log,
    run_replay,
    sleep_until_ns,
)
from shaping.spec import LinkShape


def test_sleep_until_never_wakes_early() -> None:
    for offset in (0, 50_000, 300_000, 2_000_000):
        deadline = time.monotonic_ns() + offset
        assert sleep_until_ns(deadline) >= deadline


def test_kth_wakeup_error_does_not_grow_with_k(tmp_path: Path) -> None:
    """400 changes 2 ms apart, each apply costing 0.3 ms: a relative-sleep loop
    would be 400 x (0.3 ms + wake-up latency) > 120 ms behind at the end."""
    schedule = constant_steps([1_000_000, 2_000_000], 0.002, LinkShape())

    def costly_apply(shape: LinkShape) -> None:
        end = time.monotonic_ns() + 300_000
        while time.monotonic_ns() < end:
            pass

    start = time.monotonic_ns() + 20_000_000
    log = ReplayLogWriter(tmp_path / "log", start, 4_000_000, True)
    outcome = run_replay(schedule, costly_apply, log, start_ns=start,
                         until_ns=start + 800_000_000)
    log.close()
    changes = read_replay_log(tmp_path / "log").changes
    assert outcome.applied + outcome.skipped == len(changes) == 400
    wake = (changes["called_ns"] - changes["scheduled_ns"]).astype(float)
    wake = wake[changes["called_ns"] >= 0]
    assert np.all(wake >= 0)
    first, last = np.median(wake[:100]), np.median(wake[-100:])
    assert last < first + 200_000, (first, last)  # no growth: medians within 0.2 ms
    assert np.median(wake) < 1_000_000


def test_a_stall_skips_superseded_changes_instead_of_replaying_them(tmp_path: Path) -> None:
    schedule = constant_steps([1, 2, 3, 4, 5], 0.005, LinkShape())
    applied: list[int | None] = []

    def apply(shape: LinkShape) -> None:
        applied.append(shape.rate_bps)
        if len(applied) == 2:
            time.sleep(0.018)  # the loop is stuck past three more deadlines

    start = time.monotonic_ns() + 10_000_000
    log = ReplayLogWriter(tmp_path / "log", start, 25_000_000, True)
    run_replay(schedule, apply, log, start_ns=start, until_ns=start + 49_000_000)
    log.close()
    changes = read_replay_log(tmp_path / "log").changes
    assert len(changes) == 10
    skipped = changes[changes["called_ns"] < 0]
    assert 2 <= len(skipped) <= 4
    assert len(applied) == 10 - len(skipped)
    # A skipped change counts as late as the change that superseded it took effect.
    assert np.all(skipped["applied_ns"] - skipped["scheduled_ns"] > 3_000_000)


def test_samples_are_taken_between_changes_and_the_loop_stops_on_request(tmp_path: Path) -> None:
    schedule = constant_steps([1, 2], 0.010, LinkShape())
    counter = {"bytes": 0}

    def sample() -> dict[str, int]:
        counter["bytes"] += 100
        return dict(counter)

    start = time.monotonic_ns() + 5_000_000
    stop_at = start + 95_000_000
    log = ReplayLogWriter(tmp_path / "log", start, 20_000_000, True)
    outcome = run_replay(schedule, lambda shape: None, log, start_ns=start, sample=sample,
                         should_stop=lambda: time.monotonic_ns() > stop_at)
    log.close()
    assert outcome.reason == "stopped"
    replay = read_replay_log(tmp_path / "log")
    assert 8 <= len(replay.samples) <= 11
    offsets = (replay.samples["t_ns"] - start) % 10_000_000
    assert np.all((offsets > 4_000_000) & (offsets < 9_000_000))  # half a step off the changes
    assert list(replay.samples["bytes"][:3]) == [100, 200, 300]
