"""Media model, packetizer and pacer: sizes, timing and rates."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import pytest

from endpoints.rtc.errors import MediaFileError
from endpoints.rtc.media import AudioModel, Frame, FrameSizeFile, VideoModel
from endpoints.rtc.pacer import Pacer
from endpoints.rtc.packetizer import Packetizer
from endpoints.rtc.rtp import RtpPacket


def video_bytes(model: VideoModel, start_s: float, end_s: float) -> int:
    frames = model.frames_due(int(end_s * 1e6))
    return sum(f.size for f in frames if f.capture_time_us >= start_s * 1e6)


def test_video_follows_the_target_with_key_frames_and_30_fps() -> None:
    model = VideoModel(1_000_000, seed=1)
    frames = model.frames_due(30_000_000 - 1)
    assert len(frames) == 900  # 30 fps for 30 s
    assert frames[1].capture_time_us - frames[0].capture_time_us == pytest.approx(33_333, abs=1)
    rate = sum(f.size for f in frames) * 8 / 30
    assert rate == pytest.approx(1_000_000, rel=0.05)
    keys = [f for f in frames if f.key]
    assert len(keys) == 10  # every 3 s
    key_mean = statistics.mean(f.size for f in keys)
    p_mean = statistics.mean(f.size for f in frames if not f.key)
    assert 3.5 < key_mean / p_mean < 7  # "several times a P-frame" (5 by default)
    # Log-normal noise: P-frame sizes spread ~20 %, never negative.
    p_sizes = [f.size for f in frames if not f.key]
    assert 0.1 < statistics.pstdev(p_sizes) / p_mean < 0.3


def test_encoder_lag_reaches_a_new_target_in_about_a_second() -> None:
    model = VideoModel(500_000, size_noise_sigma=0.0, seed=2)
    model.frames_due(1_000_000)
    model.set_target(1_500_000, 1_000_000)
    model.frames_due(1_100_000)
    assert model.encoder_bps < 1_000_000  # 100 ms in: far from the new target
    model.frames_due(2_000_000)
    assert model.encoder_bps == pytest.approx(1_500_000, rel=0.05)  # 1 s: ~95 % there


def test_frame_rate_is_configurable_and_no_lag_option() -> None:
    model = VideoModel(600_000, fps=60, encoder_lag_s=0, encoder_down_lag_s=0,
                       size_noise_sigma=0, seed=3)
    assert len(model.frames_due(999_999)) == 60
    model.set_target(300_000, 1_000_000)
    assert model.encoder_bps == 300_000
    model.set_target(900_000, 1_000_000)
    assert model.encoder_bps == 900_000


def test_encoder_falls_to_a_lower_target_within_a_few_frames() -> None:
    """An overshooting encoder raises its quantiser and drops frames at once."""
    model = VideoModel(3_000_000, size_noise_sigma=0.0, seed=2)
    model.frames_due(1_000_000)
    model.set_target(1_000_000, 1_000_000)
    model.frames_due(1_034_000)  # one frame later
    assert 1_000_000 < model.encoder_bps < 2_000_000
    model.frames_due(1_100_000)
    assert model.encoder_bps == pytest.approx(1_000_000, rel=0.1)


def test_audio_is_50_packets_per_second_at_32_to_64_kbit() -> None:
    audio = AudioModel(48_000)
    packets = audio.frames_due(999_999)
    assert len(packets) == 50
    assert {p.size for p in packets} == {120}
    with pytest.raises(ValueError):
        AudioModel(16_000)


def test_frame_sizes_from_a_file(tmp_path: Path) -> None:
    trace = tmp_path / "frames.txt"
    trace.write_text("# size key\n5000 1\n800\n\n900, 0\n")
    model = FrameSizeFile.from_file(trace, fps=10)
    frames = model.frames_due(599_999)
    assert [(f.size, f.key) for f in frames] == [(5000, True), (800, False), (900, False)] * 2
    bad = tmp_path / "bad.txt"
    bad.write_text("100\nabc\n")
    with pytest.raises(MediaFileError) as info:
        FrameSizeFile.from_file(bad)
    assert info.value.where == f"{bad}:2"
    with pytest.raises(MediaFileError):
        FrameSizeFile.from_file(tmp_path / "missing.txt")


def test_packetizer_splits_evenly_marks_last_and_uses_90khz() -> None:
    packetizer = Packetizer(ssrc=42, payload_type=96, clock_rate=90_000, seed=4)
    packets = packetizer.packetize(Frame(capture_time_us=1_000_000, size=3000))
    assert [len(p.payload) for p in packets] == [1000, 1000, 1000]
    assert [p.marker for p in packets] == [False, False, True]
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    later = packetizer.packetize(Frame(capture_time_us=1_033_333, size=1200))
    assert len(later) == 1 and len(later[0].payload) == 1200
    assert (later[0].timestamp - packets[0].timestamp) & 0xFFFFFFFF == 2999  # 33.333 ms
    assert all(len(p.payload) <= 1200 for p in packetizer.packetize(Frame(0, 12_345)))


def test_pacer_sends_at_two_and_a_half_times_the_target() -> None:
    target = 400_000
    pacer = Pacer(target)
    for seq in range(200):  # 240 kB queued: more than a second at the pacing rate
        pacer.enqueue(RtpPacket(96, seq, 0, 1, payload=bytes(1188)), 0)
    sent_bytes = 0
    for tick in range(200):  # one second of 5 ms process calls
        sent_bytes += sum(p.size for p in pacer.process(tick * 5_000))
    assert sent_bytes * 8 == pytest.approx(2.5 * target, rel=0.03)


def test_pacer_releases_a_frame_as_small_bursts_and_audio_first() -> None:
    pacer = Pacer(1_000_000)  # 2.5 Mbit/s: 1562 bytes per 5 ms
    for seq in range(5):
        pacer.enqueue(RtpPacket(96, seq, 0, 1, payload=bytes(1188)), 0)
    pacer.enqueue(RtpPacket(111, 0, 0, 2, payload=bytes(100)), 0, audio=True)
    first = pacer.process(0)
    assert first[0].payload_type == 111
    assert len(first) == 3  # audio + two video packets (the budget goes negative once)
    second = pacer.process(5_000)
    assert len(second) == 1  # the debt is paid first
    assert pacer.queued_packets == 2


def test_pacer_drains_a_long_queue_within_two_seconds() -> None:
    pacer = Pacer(50_000)  # 125 kbit/s pacing: 600 kB would take 38 s
    for seq in range(500):
        pacer.enqueue(RtpPacket(96, seq, 0, 1, payload=bytes(1188)), 0)
    ticks = 0
    while pacer.queued_packets and ticks < 1000:
        pacer.process(ticks * 5_000)
        ticks += 1
    assert ticks * 5_000 <= 2_200_000


def test_frame_drop_interval_drops_one_frame_in_n_and_keeps_frame_sizes() -> None:
    """Congestion-window pushback: the caller lowers the target by 1/N as frames go."""
    model = VideoModel(900_000, size_noise_sigma=0.0, encoder_lag_s=0, encoder_down_lag_s=0,
                       key_frame_interval_s=100, seed=4)
    before = model.frames_due(999_999)
    model.set_frame_drop_interval(3)
    model.set_target(600_000, 1_000_000)
    during = model.frames_due(1_999_999)
    assert len(during) == 20 and model.dropped_frames == 10
    p_before = statistics.mean(f.size for f in before if not f.key)
    assert statistics.mean(f.size for f in during) == pytest.approx(p_before, rel=0.01)
    model.set_frame_drop_interval(None)
    assert len(model.frames_due(2_999_999)) == 30
    with pytest.raises(ValueError, match="at least 2"):
        model.set_frame_drop_interval(1)


def test_a_dropped_key_frame_moves_to_the_next_frame_kept() -> None:
    model = VideoModel(900_000, key_frame_interval_s=1, seed=5)
    model.frames_due(999_999)  # frames 0..29; frame 30 is the next key frame
    model.set_frame_drop_interval(2)
    frames = model.frames_due(1_040_000)  # frame 30 dropped, frame 31 kept
    assert [f.index for f in frames] == [31] and frames[0].key
