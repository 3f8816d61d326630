"""Media model: what a real-time encoder hands the RTP sender, without encoding video.

Video: frames at a fixed rate whose sizes follow the target bitrate, with
periodic key frames several times a P-frame, log-normal size noise and
encoder lag: the encoder's rate climbs to a higher target over about a
second, as real rate controllers do, but falls to a lower one within a few
frames, because an encoder that overshoots a lowered target raises its
quantiser on the next frame and drops frames while its buffer is over
budget (libvpx CBR with the ``rc_dropframe_thresh`` of 30 that libwebrtc's
libvpx_vp8_encoder.cc sets; libwebrtc's own FrameDropper,
modules/video_coding/utility/frame_dropper.cc). GCC's congestion window
may ask it to drop one frame in N (:meth:`VideoModel.set_frame_drop_interval`,
libwebrtc VideoStreamEncoder's congestion-window frame drop): the frames it
keeps stay their size, so the rate falls by 1/N. Or frame sizes replayed
from a file.
Audio: a constant-bitrate stream of 50 packets/s (Opus-like, 32-64 kbit/s).

Time is injected (``now_us``); nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from endpoints.rtc.errors import MediaFileError

VIDEO_CLOCK_RATE = 90_000  # RFC 3551 / every video payload format
AUDIO_CLOCK_RATE = 48_000  # Opus, RFC 7587
AUDIO_PACKETS_PER_SECOND = 50
MIN_AUDIO_BPS, MAX_AUDIO_BPS = 32_000, 64_000


@dataclass(frozen=True)
class Frame:
    """One encoded frame (video) or packet's worth of audio."""

    capture_time_us: int
    size: int  # bytes of encoded media
    key: bool = False
    index: int = 0


class MediaSource(Protocol):
    clock_rate: int

    def set_target(self, bitrate_bps: float, now_us: int) -> None: ...

    def frames_due(self, now_us: int) -> list[Frame]: ...


class VideoModel:
    """Synthetic video encoder output following a target bitrate."""

    clock_rate = VIDEO_CLOCK_RATE

    def __init__(self, target_bps: float = 300_000, *, fps: float = 30.0,
                 key_frame_interval_s: float = 3.0, key_frame_ratio: float = 5.0,
                 size_noise_sigma: float = 0.2, encoder_lag_s: float = 1.0,
                 encoder_down_lag_s: float = 0.1, min_frame_size: int = 50, seed: int | None = None,
                 start_us: int = 0) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        if key_frame_ratio < 1:
            raise ValueError("key_frame_ratio must be >= 1 (a key frame is not smaller)")
        self.fps = fps
        self.frame_interval_us = 1_000_000 / fps
        self.gop_frames = max(1, round(key_frame_interval_s * fps))
        self.key_frame_ratio = key_frame_ratio
        self.size_noise_sigma = size_noise_sigma
        # The rate follows the target as a first-order lag; three time constants
        # (95 %) take ``encoder_lag_s`` going up, ``encoder_down_lag_s`` going down.
        self.lag_time_constant_s = encoder_lag_s / 3 if encoder_lag_s > 0 else 0.0
        self.down_lag_time_constant_s = (encoder_down_lag_s / 3 if encoder_down_lag_s > 0
                                         else 0.0)
        self.min_frame_size = min_frame_size
        self.target_bps = float(target_bps)
        self.encoder_bps = float(target_bps)
        self._rng = random.Random(seed)
        self._start_us = start_us
        self._next_index = 0
        self._last_rate_update_us = start_us
        self._drop_interval: int | None = None
        self._drop_counter = 0
        self._key_pending = False
        self.dropped_frames = 0

    def set_frame_drop_interval(self, interval: int | None) -> None:
        """Drop one frame in ``interval`` (None: none), as congestion-window pushback asks.

        The caller lowers the target by 1/interval at the same time, so the frames kept
        are sized as before.
        """
        if interval is not None and interval < 2:
            raise ValueError("a frame drop interval is at least 2 (one frame in two)")
        self._drop_interval = interval

    def set_target(self, bitrate_bps: float, now_us: int) -> None:
        self._advance_rate(now_us)
        self.target_bps = max(0.0, float(bitrate_bps))
        rising = self.target_bps >= self.encoder_bps
        if (self.lag_time_constant_s if rising else self.down_lag_time_constant_s) == 0:
            self.encoder_bps = self.target_bps

    def _advance_rate(self, now_us: int) -> None:
        dt = max(0, now_us - self._last_rate_update_us) / 1e6
        self._last_rate_update_us = max(self._last_rate_update_us, now_us)
        tau = (self.lag_time_constant_s if self.target_bps >= self.encoder_bps
               else self.down_lag_time_constant_s)
        if tau == 0:
            self.encoder_bps = self.target_bps
        else:
            keep = math.exp(-dt / tau)
            self.encoder_bps = self.target_bps + (self.encoder_bps - self.target_bps) * keep

    def next_frame_time_us(self) -> int:
        return self._start_us + round(self._next_index * self.frame_interval_us)

    def frames_due(self, now_us: int) -> list[Frame]:
        frames: list[Frame] = []
        while self.next_frame_time_us() <= now_us:
            capture = self.next_frame_time_us()
            self._advance_rate(capture)
            if self._drop_interval is not None:
                drop = self._drop_counter % self._drop_interval == 0
                self._drop_counter += 1
                if drop:
                    # A key frame due now is encoded with the next frame kept.
                    self._key_pending |= self._next_index % self.gop_frames == 0
                    self.dropped_frames += 1
                    self._next_index += 1
                    continue
            frames.append(self._make_frame(capture))
            self._next_index += 1
        return frames

    def _make_frame(self, capture_us: int) -> Frame:
        key = self._next_index % self.gop_frames == 0 or self._key_pending
        self._key_pending = False
        # Budget of one GOP split so that a key frame weighs key_frame_ratio P-frames
        # and the GOP's mean rate equals the encoder rate.
        gop_bytes = self.encoder_bps / 8 * self.gop_frames / self.fps
        p_bytes = gop_bytes / (self.gop_frames - 1 + self.key_frame_ratio)
        mean = p_bytes * (self.key_frame_ratio if key else 1.0)
        if self._drop_interval is not None:
            # The rate is already lowered by 1/interval: the frames kept keep their size.
            mean *= self._drop_interval / (self._drop_interval - 1)
        sigma = self.size_noise_sigma
        noise = math.exp(self._rng.gauss(0.0, sigma) - sigma * sigma / 2) if sigma > 0 else 1.0
        size = max(self.min_frame_size, round(mean * noise))
        return Frame(capture_us, size, key, self._next_index)


class FrameSizeFile:
    """Frame sizes replayed from a file, looping at the end.

    Format: one frame per line, ``SIZE_BYTES`` or ``SIZE_BYTES KEY`` (KEY 1 or 0);
    blank lines and ``#`` comments are ignored. The target bitrate is ignored:
    the file is what the encoder produced.
    """

    clock_rate = VIDEO_CLOCK_RATE

    def __init__(self, sizes: list[tuple[int, bool]], *, fps: float = 30.0,
                 start_us: int = 0) -> None:
        if not sizes:
            raise ValueError("a frame-size trace needs at least one frame")
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.sizes = sizes
        self.fps = fps
        self.frame_interval_us = 1_000_000 / fps
        self._start_us = start_us
        self._next_index = 0

    @classmethod
    def from_file(cls, path: str | Path, *, fps: float = 30.0, start_us: int = 0) -> FrameSizeFile:
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise MediaFileError(f"cannot read frame-size file: {exc.strerror}", where=str(path),
                                 fix="check the path given for the video frame sizes") from exc
        sizes: list[tuple[int, bool]] = []
        for number, raw in enumerate(lines, start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.replace(",", " ").split()
            try:
                size = int(fields[0])
                key = bool(int(fields[1])) if len(fields) > 1 else False
                if size <= 0 or len(fields) > 2:
                    raise ValueError
            except ValueError:
                raise MediaFileError(f"bad frame-size line {raw.strip()!r}",
                                     where=f"{path}:{number}",
                                     fix="write one frame per line: SIZE_BYTES [KEY 0|1]") from None
            sizes.append((size, key))
        if not sizes:
            raise MediaFileError("frame-size file lists no frames", where=str(path),
                                 fix="write one frame per line: SIZE_BYTES [KEY 0|1]")
        return cls(sizes, fps=fps, start_us=start_us)

    def set_target(self, bitrate_bps: float, now_us: int) -> None:
        """Recorded sizes do not follow a target."""

    def next_frame_time_us(self) -> int:
        return self._start_us + round(self._next_index * self.frame_interval_us)

    def frames_due(self, now_us: int) -> list[Frame]:
        frames: list[Frame] = []
        while self.next_frame_time_us() <= now_us:
            size, key = self.sizes[self._next_index % len(self.sizes)]
            frames.append(Frame(self.next_frame_time_us(), size, key, self._next_index))
            self._next_index += 1
        return frames


class AudioModel:
    """Constant-bitrate audio: one packet every 20 ms (50 packets/s)."""

    clock_rate = AUDIO_CLOCK_RATE

    def __init__(self, bitrate_bps: int = 32_000, *, start_us: int = 0) -> None:
        if not MIN_AUDIO_BPS <= bitrate_bps <= MAX_AUDIO_BPS:
            raise ValueError(f"audio bitrate must be {MIN_AUDIO_BPS}..{MAX_AUDIO_BPS} bit/s")
        self.bitrate_bps = bitrate_bps
        self.packet_interval_us = 1_000_000 // AUDIO_PACKETS_PER_SECOND
        self.packet_size = bitrate_bps // 8 // AUDIO_PACKETS_PER_SECOND
        self._start_us = start_us
        self._next_index = 0

    def set_target(self, bitrate_bps: float, now_us: int) -> None:
        """Audio keeps its rate; the estimate steers video."""

    def next_frame_time_us(self) -> int:
        return self._start_us + self._next_index * self.packet_interval_us

    def frames_due(self, now_us: int) -> list[Frame]:
        frames: list[Frame] = []
        while self.next_frame_time_us() <= now_us:
            frames.append(Frame(self.next_frame_time_us(), self.packet_size, False,
                                self._next_index))
            self._next_index += 1
        return frames
