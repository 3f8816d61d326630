"""aiortc's receiver-side estimator as an AlphaRTC/OpenNetLab plugin (bench only).

``aiortc.rate.RemoteBitrateEstimator`` is aiortc's port of libwebrtc's
RemoteBitrateEstimatorAbsSendTime (abs-send-time inter-arrival groups, the
Kalman OveruseEstimator, the adaptive-threshold OveruseDetector and
AimdRateControl). aiortc's RTCRtpReceiver calls ``add(arrival_time_ms,
abs_send_time, payload_size, ssrc)`` for every RTP packet and sends a REMB
whenever it returns an estimate; its sender sets the encoder's bitrate to
the REMB. Here the netlab receiver loads this file with ``--estimator
plugin:bench/aiortc_estimator.py`` (scenario ``estimator: plugin:...``): every
packet goes to ``add`` and each 200 ms poll sends the latest estimate in REMB,
which the netlab sender (``--estimator remb``) follows, as aiortc's does.

Differences from aiortc's own receiver, both from AlphaRTC's plugin
contract: send and arrival times come as whole milliseconds (aiortc's
arrival clock is whole ms too; its abs-send-time has 3.8 µs steps), and the
REMB goes out at the next 200 ms poll rather than at once. aiortc sends no
REMB before its rate control is initialised (3 s of throughput); until then
this plugin answers :data:`START_BPS`, the netlab sender's default start rate.
"""

from __future__ import annotations

from typing import Any

from aiortc.rate import RemoteBitrateEstimator

START_BPS = 300_000
ABS_SEND_TIME_UNITS_PER_S = 1 << 18  # 6.18 fixed-point seconds (abs-send-time)
ABS_SEND_TIME_MASK = 0xFFFFFF


def abs_send_time_from_ms(send_time_ms: float) -> int:
    """The 24-bit abs-send-time value for a send time in ms (wraps every 64 s)."""
    return round(send_time_ms * ABS_SEND_TIME_UNITS_PER_S / 1000) & ABS_SEND_TIME_MASK


class Estimator:
    def __init__(self) -> None:
        self.rbe = RemoteBitrateEstimator()
        self.estimate_bps: int | None = None
        self.updates = 0

    def report_states(self, stats: dict[str, Any]) -> None:
        result = self.rbe.add(
            arrival_time_ms=int(stats["arrival_time_ms"]),
            abs_send_time=abs_send_time_from_ms(float(stats["send_time_ms"])),
            payload_size=int(stats["payload_size"]) + int(stats["padding_length"]),
            ssrc=int(stats["ssrc"]))
        if result is not None:
            self.estimate_bps = int(result[0])
            self.updates += 1

    def get_estimated_bandwidth(self) -> int:
        return START_BPS if self.estimate_bps is None else self.estimate_bps
