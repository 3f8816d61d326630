"""Replaying a recorded call through an estimator, the way AlphaRTC drives it.

Each recorded packet becomes AlphaRTC's stats dict
(:class:`~endpoints.rtc.stats.AlphaRtcStats`) and goes to
``report_states``; right after the first packet that arrives more than the
poll interval after the previous poll, ``get_estimated_bandwidth`` is asked
(``RemoteEstimatorProxy::IncomingPacket``, OpenNetLab/AlphaRTC
``modules/remote_bitrate_estimator/remote_estimator_proxy.cc``). Every
call is timed and every answer is kept as returned, before AlphaRTC's
``int()``, so what is not an int in bps can be pointed out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from endpoints.rtc.errors import PacketError, RtcError
from endpoints.rtc.estimators import DEFAULT_POLL_INTERVAL_S, PluginEstimator
from endpoints.rtc.recording import RecordedPacket
from endpoints.rtc.rtp import RtpPacket
from endpoints.rtc.stats import AlphaRtcStats

#: Recorded by ``receiver_app --record`` from a netlab RTC call (sender-side GCC,
#: video + audio + probe packets) over a 2 Mbit/s, 20 ms user-space link.
BUNDLED_RECORDING = "call-2mbit-20ms.jsonl.gz"
MIN_PLAUSIBLE_BPS = 10_000  # OpenNetLab's action range starts at 10 kbit/s
MAX_PLAUSIBLE_BPS = 1_000_000_000


def bundled_recording() -> Path:
    return Path(str(resources.files("endpoints.rtc") / "data" / BUNDLED_RECORDING))


@dataclass(frozen=True)
class Answer:
    t_s: float  # since the first packet's arrival
    value: Any  # as the plugin returned it
    latency_s: float
    packets: int  # reported so far


@dataclass
class Replay:
    answers: list[Answer] = field(default_factory=list)
    packets: int = 0
    duration_s: float = 0.0

    def flags(self) -> list[str]:
        """What is wrong with the answers, one line per kind of problem."""
        out: list[str] = []
        types = sorted({type(a.value).__name__ for a in self.answers
                        if type(a.value) is not int})
        if types:
            out.append(f"returns {', '.join(types)}, not int: AlphaRTC's cmdinfer int()s it; "
                       "return int(bps)")
        numbers = [as_number(a.value) for a in self.answers]
        low = [n for n in numbers if n is not None and 0 < n < MIN_PLAUSIBLE_BPS]
        if low:
            out.append(f"{len(low)} answers below {MIN_PLAUSIBLE_BPS} (e.g. {low[0]:g}): "
                       "kbit/s or Mbit/s instead of bps?")
        zero = sum(1 for n in numbers if n == 0)
        if zero:
            out.append(f"{zero} answers of 0 bps: the sender would stop sending video")
        high = [n for n in numbers if n is not None and n > MAX_PLAUSIBLE_BPS]
        if high:
            out.append(f"{len(high)} answers above 1 Gbit/s (e.g. {high[0]:g})")
        return out


def as_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def replay(estimator: PluginEstimator, packets: Iterable[RecordedPacket], *,
           poll_interval_s: float = DEFAULT_POLL_INTERVAL_S) -> Replay:
    """Feed ``packets`` to the plugin; errors from the plugin propagate as PluginError."""
    builder = AlphaRtcStats()
    result = Replay()
    first_ns = last_poll_ns = None
    interval_ns = int(poll_interval_s * 1e9)
    for recorded in packets:
        data = recorded.datagram()
        try:
            packet = RtpPacket.decode(data)
        except PacketError as exc:
            raise RtcError(f"recorded packet is not RTP: {exc}",
                           where=f"arrival_ns {recorded.arrival_ns}",
                           fix="record with receiver_app --record") from None
        if first_ns is None:
            first_ns = last_poll_ns = recorded.arrival_ns
        estimator.report_states(builder.build(packet, len(data), recorded.arrival_ns))
        result.packets += 1
        assert last_poll_ns is not None
        if recorded.arrival_ns - last_poll_ns > interval_ns:
            last_poll_ns = recorded.arrival_ns
            started = time.perf_counter()
            value = estimator.raw_estimate()
            result.answers.append(Answer((recorded.arrival_ns - first_ns) / 1e9, value,
                                         time.perf_counter() - started, result.packets))
        result.duration_s = (recorded.arrival_ns - first_ns) / 1e9
    return result
