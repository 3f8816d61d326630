"""The sender drops frames when GCC's congestion window is overfull, and only then."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from endpoints.rtc.media import VideoModel
from endpoints.rtc.sender_app import RtcSender, SenderConfig, build_parser, config_from_args


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _sender(sock: socket.socket, **options: float | str) -> RtcSender:
    config = SenderConfig(dest=sock.getsockname(), start_bps=1_000_000, **options)  # type: ignore[arg-type]
    sender = RtcSender(config, sock)
    return sender


def test_overfull_window_drops_frames_and_lowers_the_encoder_rate(udp: socket.socket) -> None:
    sender = _sender(udp)
    t0 = sender.start_ns // 1000
    window = sender.bwe.congestion_window
    assert window is not None and isinstance(sender.video, VideoModel)
    window.on_feedback_rtt(60.0)
    sender.bwe.on_process_interval()
    assert window.data_window_bytes == pytest.approx(1_000_000 / 8 * 0.41)
    # Bytes in flight at a quarter of the window: nothing happens.
    sender.adapter.in_flight_bytes = 12_000
    sender._update_encoder(t0)
    assert sender.video.target_bps == pytest.approx(sender._video_share(1_000_000))
    # Twice the window: the ratio falls 10 % per update; under 50 % at most one frame
    # in two goes.
    sender.adapter.in_flight_bytes = 110_000
    for step in range(8):
        sender._update_encoder(t0 + step)
    assert sender.video.target_bps == pytest.approx(sender._video_share(500_000))
    frames = sender.video.frames_due(t0 + 1_000_000)
    assert len(frames) in (15, 16) and sender.video.dropped_frames == 31 - len(frames)
    # Drained: back to every frame at the full target.
    sender.adapter.in_flight_bytes = 0
    sender._update_encoder(t0 + 1_000_000)
    assert sender.video.target_bps == pytest.approx(sender._video_share(1_000_000))
    sender.close()


def test_no_congestion_window_with_remb_or_when_turned_off(udp: socket.socket) -> None:
    assert _sender(udp, estimator="remb").bwe.congestion_window is None
    assert _sender(udp, congestion_window_ms=0.0).bwe.congestion_window is None


def test_congestion_window_flag() -> None:
    parser = build_parser()
    args = parser.parse_args(["--dest", "127.0.0.1:5000", "--congestion-window", "200"])
    assert config_from_args(args, parser).congestion_window_ms == 200
    with pytest.raises(SystemExit):
        config_from_args(parser.parse_args(["--dest", "127.0.0.1:5000",
                                            "--congestion-window", "-1"]), parser)
