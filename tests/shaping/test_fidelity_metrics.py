"""Fidelity metrics on synthetic logs whose truth is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shaping.fidelity import (
    asked_from_changes,
    bin_edges,
    kernel_bins,
    kernel_direction,
    percentiles_ms,
    step_series,
    userlink_direction,
)
from shaping.replay import ReplayLogWriter, read_replay_log
from shaping.spec import LinkShape
from shaping.userlink.log import change_dtype, packet_dtype

S = 1_000_000_000
MS = 1_000_000
START = 10 * S


def _replay_log(tmp_path: Path, *, delivered_share: float, late_ns: int,
                idle_from_s: float | None = None, netem_drops_every: int = 0,
                loss: float = 0.0) -> Path:
    """2 s of 10 ms steps alternating 4/12 Mbit/s; the link delivers ``delivered_share``
    of the asked bits; changes land ``late_ns`` late; the queue empties from ``idle_from_s``."""
    path = tmp_path / "replay.log"
    log = ReplayLogWriter(path, START, 20 * MS, True)
    delivered = 0.0
    for k in range(200):
        t = START + k * 10 * MS
        rate = 4_000_000 if k % 2 == 0 else 12_000_000
        log.change(t, t + late_ns // 2, t + late_ns, LinkShape(rate_bps=rate, loss=loss))
        sample_t = t + 5 * MS
        backlog = 0 if idle_from_s is not None and k * 0.01 >= idle_from_s else 20
        drops = k // netem_drops_every if netem_drops_every else 0
        log.sample(sample_t, 500_000, {"bytes": round(delivered), "packets": k,
                                       "backlog_packets": backlog, "backlog_bytes": backlog * 1514,
                                       "drops": drops, "loss_drops": drops})
        delivered += rate * 0.010 / 8 * delivered_share
    log.close()
    return path


def test_percentiles_in_milliseconds() -> None:
    values = np.arange(1, 101) * MS
    result = percentiles_ms(values)
    assert result == {"p50": 50.5, "p99": 99.01, "max": 100.0}
    assert percentiles_ms([]) is None


def test_step_series_integrates_over_bins() -> None:
    series = step_series([0, 10, 20], [1.0, 3.0, 0.0])
    edges = np.array([0, 15, 40, 50], dtype=np.int64)
    assert series.integrate(edges) * 1e9 == pytest.approx([10 + 15, 15 + 0, 0])
    assert np.isnan(step_series([5], [1.0]).integrate(np.array([0, 10]))[0])  # before the start


def test_kernel_capacity_and_timing_from_a_replay_log(tmp_path: Path) -> None:
    log = read_replay_log(_replay_log(tmp_path, delivered_share=0.97, late_ns=300_000))
    entry = kernel_direction("ab", "a_to_b", log)
    assert entry.timing_err_ms == {"p50": 0.3, "p99": 0.3, "max": 0.3}
    # Samples from 5 ms to 1.995 s: three whole 500 ms bins.
    assert entry.capacity_bins_total == 3 and entry.capacity_bins == 3
    assert entry.capacity_mape == pytest.approx(0.03, abs=0.002)
    assert entry.loss_asked is None and entry.delay_err_ms is None


def test_netem_drops_are_the_queues_where_no_loss_was_asked(tmp_path: Path) -> None:
    """netem's leaf is the droptail queue too, and counts its overflow with its random
    loss: with no loss asked those drops are not a loss the link added (a VM run of a
    sender that overloads its bottleneck was judged unfaithful for them); with loss
    asked, loss is judged from them as before."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    overflow = read_replay_log(_replay_log(tmp_path / "a", delivered_share=1.0, late_ns=0,
                                           netem_drops_every=10))
    entry = kernel_direction("ab", "a_to_b", overflow)
    assert entry.loss_asked is None and entry.loss_seen is None
    assert any("overflow" in note for note in entry.notes)
    lossy = read_replay_log(_replay_log(tmp_path / "b", delivered_share=1.0, late_ns=0,
                                        netem_drops_every=10, loss=0.05))
    entry = kernel_direction("ab", "a_to_b", lossy)
    assert entry.loss_asked == pytest.approx(0.05) and entry.loss_seen is not None


def test_bins_with_an_empty_queue_are_left_out(tmp_path: Path) -> None:
    log = read_replay_log(_replay_log(tmp_path, delivered_share=1.0, late_ns=0, idle_from_s=0.8))
    bins = kernel_bins(log.samples, asked_from_changes(log.changes),
                       bin_edges(START + 5 * MS, START + 2 * S))
    assert list(bins.backlogged) == [True, False, False]
    assert bins.mape() == pytest.approx(0.0, abs=0.002)


def _userlink_logs(*, late_ns: int, lost_every: int, delay_s: float = 0.020
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A 10 Mbit/s link, always backlogged, 1486-byte packets (1500 B frames: 1.2 ms each)."""
    frame_ns = 1_200_000
    count = 2000
    packets = np.zeros(count, dtype=packet_dtype())
    packets["size"] = 1486
    packets["arrival_ns"] = START + np.arange(count) * frame_ns // 2  # twice the capacity
    served = START + (np.arange(count) + 1) * frame_ns
    packets["due_ns"] = served + round(delay_s * 1e9)
    packets["departure_ns"] = packets["due_ns"] + late_ns
    lost = np.arange(count) % lost_every == 0
    packets["departure_ns"][lost] = -1
    packets["due_ns"][lost] = -1
    packets["reason"][lost] = 1
    changes = np.zeros(1, dtype=change_dtype())
    changes[0] = (START, START, 10_000_000, delay_s, 0.0, 0.01, 100, -1)
    return packets, changes


def test_userlink_delay_and_loss_asked_vs_seen() -> None:
    packets, changes = _userlink_logs(late_ns=400_000, lost_every=100)
    entry = userlink_direction("ab", "b_to_a", packets, changes, start_ns=START)
    assert entry.delay_err_ms == {"p50": 0.4, "p99": 0.4, "p999": 0.4, "max": 0.4}
    assert entry.loss_asked == pytest.approx(0.01)
    assert entry.loss_seen == pytest.approx(0.01)
    assert entry.loss_packets == 2000
    assert entry.timing_err_ms is None  # only the starting shape: nothing was replayed
    # Lost packets leave gaps in the served stream: 1 % fewer bytes than capacity.
    assert entry.capacity_bins >= 3
    assert entry.capacity_mape == pytest.approx(0.01, abs=0.003)


def test_userlink_changes_before_the_runs_zero_are_not_judged() -> None:
    """The link runs its schedule from when it opened; the run restarts it at its
    zero. Changes due in that run-up (applied late while the process started)
    say nothing about the run; a late change after the zero still fails it."""
    packets, _ = _userlink_logs(late_ns=0, lost_every=100)
    changes = np.zeros(6, dtype=change_dtype())
    opened = START - 300 * MS
    changes[0] = (opened, opened, 10_000_000, 0.02, 0.0, 0.01, 100, -1)
    for i, when in enumerate((opened + 10 * MS, opened + 20 * MS), start=1):
        changes[i] = (when, opened + 120 * MS, 5_000_000, 0.02, 0.0, 0.01, 100, -1)
    changes[3] = (START, START + 50_000, 10_000_000, 0.02, 0.0, 0.01, 100, -1)
    changes[4] = (START + S, START + S + 60_000, 10_000_000, 0.02, 0.0, 0.01, 100, -1)
    changes[5] = (START + 2 * S, START + 2 * S + 70_000, 10_000_000, 0.02, 0.0, 0.01, 100, -1)
    entry = userlink_direction("ab", "b_to_a", packets, changes, start_ns=START)
    assert entry.timing_err_ms is not None
    assert entry.timing_err_ms["max"] == pytest.approx(0.07)
    changes[5]["applied_ns"] = START + 2 * S + 30 * MS
    late = userlink_direction("ab", "b_to_a", packets, changes, start_ns=START)
    assert late.timing_err_ms is not None and late.timing_err_ms["max"] == pytest.approx(30)


def test_bins_asked_for_a_packet_or_two_are_not_judged_by_bytes() -> None:
    """One delivery opportunity in a 500 ms bin (24 kbit/s) carrying a 1,250-byte
    packet misses by 17 % with the link exactly right; packet sizes, not the link,
    decide such a bin, so the mean error leaves it out (the per-bin check, with
    its slack of frames, still sees it)."""
    from shaping.fidelity.capacity import CapacityBins

    edges = START + np.arange(4, dtype=np.int64) * 500 * MS
    bins = CapacityBins(edges_ns=edges,
                        delivered_bps=np.array([20_000.0, 990_000.0, 1_010_000.0]),
                        asked_bps=np.array([24_064.0, 1_000_000.0, 1_000_000.0]),
                        backlogged=np.array([True, True, True]))
    assert bins.counted.sum() == 3
    assert bins.judged.tolist() == [False, True, True]
    assert bins.mape() == pytest.approx(0.01)
    assert len(bins.counted_bins(START)) == 3
    low = CapacityBins(edges_ns=edges[:2], delivered_bps=np.array([20_000.0]),
                       asked_bps=np.array([24_064.0]), backlogged=np.array([True]))
    assert low.mape() is None
