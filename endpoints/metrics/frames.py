"""Video frame delay and freezes.

Frame delay: from the first packet of a frame leaving the sender to the
last packet of that frame arriving, for frames whose every packet arrived
(one clock, so exact).

Freezes follow libwebrtc's ``VideoQualityObserver::OnRenderedFrame``
(video/video_quality_observer2.cc), the definition behind the W3C
webrtc-stats ``freezeCount``: each inter-frame interval is added to a moving
average of the last 30 intervals, and once it holds at least 5, an interval
``>= max(3 × average, average + 150 ms)`` is a freeze lasting that interval
(the average is floored to whole ms, as libwebrtc's
``GetAverageRoundedDown``). Without a decoder the lab takes a frame's
"render" time as its completion time, held back to the previous frame's
(frames are shown in order).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FREEZE_WINDOW_FRAMES = 30  # kAvgInterframeDelaysWindowSizeFrames
FREEZE_MIN_SAMPLES = 5  # kMinFrameSamplesToDetectFreeze
FREEZE_MIN_INCREASE_MS = 150  # kMinIncreaseForFreezeMs


@dataclass(frozen=True)
class FrameTiming:
    """Per frame (sorted by ``frame_id``): first send, last arrival (-1
    when not complete), and whether every packet sent for it arrived."""

    frame_id: npt.NDArray[np.int64]
    first_send_ns: npt.NDArray[np.int64]
    last_arrival_ns: npt.NDArray[np.int64]
    complete: npt.NDArray[np.bool_]

    @property
    def delay_ms(self) -> npt.NDArray[np.float64]:
        """Frame delay of the complete frames, in frame order."""
        done = self.complete
        return (self.last_arrival_ns[done] - self.first_send_ns[done]).astype(np.float64) / 1e6

    def render_times_ns(self) -> npt.NDArray[np.int64]:
        """Completion times of complete frames, each held back to its
        predecessor's (in-order display)."""
        done = self.last_arrival_ns[self.complete]
        return np.maximum.accumulate(done) if done.size else done


def frame_timing(sent_frame_id: npt.ArrayLike, sent_ns: npt.ArrayLike, sent_seq: npt.ArrayLike,
                 recv_frame_id: npt.ArrayLike, recv_arrival_ns: npt.ArrayLike,
                 recv_seq: npt.ArrayLike) -> FrameTiming:
    """Join sender and receiver packet logs of one stream on the transport
    sequence number (duplicates count once)."""
    s_frame = np.asarray(sent_frame_id, dtype=np.int64)
    s_ns = np.asarray(sent_ns, dtype=np.int64)
    s_seq = np.asarray(sent_seq, dtype=np.int64)
    r_frame = np.asarray(recv_frame_id, dtype=np.int64)
    r_ns = np.asarray(recv_arrival_ns, dtype=np.int64)
    r_seq = np.asarray(recv_seq, dtype=np.int64)

    frames, s_index = np.unique(s_frame, return_inverse=True)
    first_send = np.full(frames.size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_send, s_index, s_ns)
    sent_count = np.bincount(s_index, minlength=frames.size)

    # First arrival of each transport sequence number; only packets the
    # sender logged for a frame of this stream count.
    seqs, first = np.unique(r_seq, return_index=True)
    r_frame, r_ns = r_frame[first], r_ns[first]
    known = np.isin(seqs, s_seq)
    r_frame, r_ns = r_frame[known], r_ns[known]
    pos = np.searchsorted(frames, r_frame)
    valid = (pos < frames.size) & (frames[np.minimum(pos, frames.size - 1)] == r_frame) \
        if frames.size else np.zeros(r_frame.size, dtype=bool)
    pos, r_ns = pos[valid], r_ns[valid]
    recv_count = np.bincount(pos, minlength=frames.size)
    last_arrival = np.full(frames.size, -1, dtype=np.int64)
    np.maximum.at(last_arrival, pos, r_ns)
    complete = recv_count >= sent_count
    last_arrival = np.where(complete, last_arrival, -1)
    return FrameTiming(frames, first_send, last_arrival, complete)


@dataclass(frozen=True)
class FreezeStats:
    count: int
    total_s: float
    durations_ms: tuple[float, ...]


def freezes(render_times_ns: npt.ArrayLike, *, window: int = FREEZE_WINDOW_FRAMES,
            min_samples: int = FREEZE_MIN_SAMPLES,
            min_increase_ms: float = FREEZE_MIN_INCREASE_MS) -> FreezeStats:
    """Freezes in a sequence of frame render times (see the module docstring)."""
    times_ms = np.asarray(render_times_ns, dtype=np.int64) // 1_000_000
    recent: deque[int] = deque(maxlen=window)
    durations: list[float] = []
    for gap in np.diff(times_ms).tolist():
        recent.append(gap)
        if len(recent) >= min_samples:
            average = sum(recent) // len(recent)
            if gap >= max(3 * average, average + min_increase_ms):
                durations.append(float(gap))
    return FreezeStats(count=len(durations), total_s=sum(durations) / 1000.0,
                       durations_ms=tuple(durations))
