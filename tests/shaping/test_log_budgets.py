"""Link and replay logs stop at their size cap, and a full disk is reported in
the log's header instead of killing the writer (issue 16, item 3)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shaping.replay.log import ReplayLogWriter, read_replay_log
from shaping.spec import LinkShape
from shaping.userlink.log import (
    BackgroundWriter,
    PacketLogWriter,
    log_status,
    read_packet_log,
)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs: writes past it fail with ENOSPC, as on a full /run."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_packet_log_stops_at_its_cap_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    writer = BackgroundWriter()
    log = PacketLogWriter(path, writer, cap_bytes=32 + 32 * 1000)
    for i in range(5000):
        log.record(i, i + 1, i, 100, 0)
    log.flush()
    writer.close()
    log.release()
    assert len(read_packet_log(path)) == 1000
    assert path.stat().st_size == 32 + 32 * 1000
    status = log_status(path)
    assert status is not None and "size cap" in status and "NETLAB_LOG_CAP_MB" in status


def test_packet_log_under_its_cap_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    log = PacketLogWriter(path, None, cap_bytes=1 << 20)
    for i in range(100):
        log.record(i, i + 1, i, 100, 0)
    log.close()
    assert len(read_packet_log(path)) == 100 and log_status(path) is None


def test_full_disk_is_recorded_and_the_writer_thread_lives_on(tiny_disk: Path) -> None:
    writer = BackgroundWriter()
    full = PacketLogWriter(tiny_disk / "a.log", writer, cap_bytes=1 << 30)
    for i in range(10_000):  # 320 kB into a 64 KiB disk
        full.record(i, i, i, 1500, 0)
    full.flush()
    writer.close()
    full.release()
    status = log_status(tiny_disk / "a.log")
    assert status is not None and "No space left on device" in status
    assert 0 < len(read_packet_log(tiny_disk / "a.log")) < 10_000


def test_writer_queue_is_bounded(tmp_path: Path) -> None:
    writer = BackgroundWriter(max_pending=1)  # nothing fits: the log stops at once
    log = PacketLogWriter(tmp_path / "a.log", writer)
    log.record(1, 2, 1, 100, 0)
    log.flush()
    writer.close()
    log.release()
    status = log_status(tmp_path / "a.log")
    assert status is not None and "behind" in status
    assert writer.pending == 0


def test_replay_log_stops_at_its_cap_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "r.log"
    log = ReplayLogWriter(path, 0, 0, True, cap_bytes=32 + 80 * 10)
    for i in range(100):
        log.change(i, i, i, LinkShape(rate_bps=1_000_000))
    log.close()
    read = read_replay_log(path)
    assert len(read.changes) == 10 and read.loop
    assert read.status is not None and "size cap" in read.status


def test_replay_log_on_a_full_disk_reports_enospc(tiny_disk: Path) -> None:
    log = ReplayLogWriter(tiny_disk / "r.log", 0, 0, False, cap_bytes=1 << 30)
    for i in range(5000):  # 400 kB
        log.change(i, i, i, LinkShape(rate_bps=1_000_000))
    log.close()
    read = read_replay_log(tiny_disk / "r.log")
    assert read.status is not None and "No space left on device" in read.status
    assert not read.loop and 0 < len(read.changes) < 5000


def test_rtc_log_stops_at_its_cap_and_says_so_in_its_header(tmp_path: Path) -> None:
    from endpoints.rtc import logs

    path = tmp_path / "receiver_estimates.bin"
    writer = logs.LogWriter(path, logs.RECEIVER_ESTIMATES, flush_bytes=160,
                            cap_bytes=logs.HEADER_SIZE + 16 * 50)
    for i in range(200):
        writer.append(i, i)
    writer.close()
    assert len(logs.read_log(path)) == 50
    status = logs.log_status(path)
    assert status is not None and "size cap" in status


def test_rtc_log_on_a_full_disk_keeps_the_endpoint_alive(tiny_disk: Path) -> None:
    from endpoints.rtc import logs

    path = tiny_disk / "receiver_estimates.bin"
    writer = logs.LogWriter(path, logs.RECEIVER_ESTIMATES, cap_bytes=1 << 30)
    for i in range(20_000):  # 320 kB
        writer.append(i, i)
    writer.close()
    status = logs.log_status(path)
    assert status is not None and "No space left on device" in status


def test_tcp_record_log_stops_at_its_cap(tmp_path: Path) -> None:
    from endpoints.tcp import logs

    path = tmp_path / logs.RECV_BINS_FILE
    log = logs.RecordLog(path, logs.RECV_BIN_DTYPE, capacity=64, cap_bytes=16 * 100)
    for i in range(1000):
        log.append((i, i))
    log.close()
    assert len(logs.read_recv_bins(tmp_path)) == 100
    assert "size cap" in logs.status_path(path).read_text()


def test_tcp_record_log_on_a_full_disk(tiny_disk: Path) -> None:
    from endpoints.tcp import logs

    log = logs.RecordLog(tiny_disk / logs.RECV_BINS_FILE, logs.RECV_BIN_DTYPE, capacity=256)
    for i in range(20_000):
        log.append((i, i))
    log.close()
    assert log.status is not None and "No space left on device" in log.status
