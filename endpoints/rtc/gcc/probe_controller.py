"""When to probe (libwebrtc goog_cc/probe_controller.cc, default configuration).

* At the start of the call: two clusters at 3× and 6× the start bitrate
  (``first/second_exponential_probe_scale``), then wait for a result.
* While waiting: a result above 0.7 × the last probe's rate
  (``further_probe_threshold``) means the path may carry more, so probe
  again at 2× that result (``further_exponential_probe_scale``); a result
  below it, or no result within 1 s (kMaxWaitingTimeForProbingResult), ends
  probing.
* Probe rates are capped at the configured maximum bitrate; a capped probe
  does not probe further.

Later probing in libwebrtc needs triggers this sender does not have: a
raised maximum or allocation from the application (``SetBitrates``,
``OnMaxTotalAllocatedBitrate``, the latter only in ALR), periodic ALR probes
(enabled only for screenshare), and recovery probes after a large drop
(only in or just after ALR). A camera stream that fills its target is never
in ALR, so after the initial phase a capacity increase is found by the AIMD
alone, as in libwebrtc. Time in ms, injected.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable

from endpoints.rtc.probing import ProbeCluster

FIRST_EXPONENTIAL_PROBE_SCALE = 3.0
SECOND_EXPONENTIAL_PROBE_SCALE = 6.0
FURTHER_EXPONENTIAL_PROBE_SCALE = 2.0
FURTHER_PROBE_THRESHOLD = 0.7
MAX_WAITING_FOR_PROBE_RESULT_MS = 1_000.0


class ProbingState(enum.Enum):
    INIT = "init"
    WAITING_FOR_RESULT = "waiting"
    COMPLETE = "complete"


class ProbeController:
    def __init__(self, max_bitrate_bps: float) -> None:
        self.max_bitrate_bps = max_bitrate_bps
        self.state = ProbingState.INIT
        self.min_bitrate_to_probe_further_bps = float("inf")
        self.estimated_bitrate_bps = 0.0
        self._last_initiated_ms: float | None = None
        self._ids = itertools.count(1)

    def start(self, start_bitrate_bps: float, now_ms: float) -> list[ProbeCluster]:
        """Initial exponential probing (once, when the network is up)."""
        if self.state is not ProbingState.INIT:
            return []
        self.estimated_bitrate_bps = start_bitrate_bps
        return self._initiate(now_ms, (FIRST_EXPONENTIAL_PROBE_SCALE * start_bitrate_bps,
                                       SECOND_EXPONENTIAL_PROBE_SCALE * start_bitrate_bps),
                              probe_further=True)

    def set_estimated_bitrate(self, bitrate_bps: float, now_ms: float) -> list[ProbeCluster]:
        """The new target; may ask for a further probe while waiting for results."""
        self.estimated_bitrate_bps = bitrate_bps
        if (self.state is ProbingState.WAITING_FOR_RESULT
                and bitrate_bps > self.min_bitrate_to_probe_further_bps):
            return self._initiate(now_ms, (FURTHER_EXPONENTIAL_PROBE_SCALE * bitrate_bps,),
                                  probe_further=True)
        return []

    def process(self, now_ms: float) -> None:
        """Give up waiting for a result 1 s after the last probe was asked for."""
        if (self.state is ProbingState.WAITING_FOR_RESULT and self._last_initiated_ms is not None
                and now_ms - self._last_initiated_ms > MAX_WAITING_FOR_PROBE_RESULT_MS):
            self.state = ProbingState.COMPLETE
            self.min_bitrate_to_probe_further_bps = float("inf")

    def _initiate(self, now_ms: float, rates_bps: Iterable[float],
                  probe_further: bool) -> list[ProbeCluster]:
        clusters: list[ProbeCluster] = []
        last = 0.0
        for rate in rates_bps:
            if rate > self.max_bitrate_bps:
                rate = self.max_bitrate_bps
                probe_further = False
            last = rate
            clusters.append(ProbeCluster(next(self._ids), rate, int(now_ms * 1000)))
        self._last_initiated_ms = now_ms
        if probe_further:
            self.state = ProbingState.WAITING_FOR_RESULT
            self.min_bitrate_to_probe_further_bps = last * FURTHER_PROBE_THRESHOLD
        else:
            self.state = ProbingState.COMPLETE
            self.min_bitrate_to_probe_further_bps = float("inf")
        return clusters
