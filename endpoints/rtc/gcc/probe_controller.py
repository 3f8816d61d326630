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

Later probing in libwebrtc needs triggers a camera stream does not give: a
raised maximum or allocation from the application (``SetBitrates``,
``OnMaxTotalAllocatedBitrate``, the latter only in ALR), periodic ALR probes
(``enable_periodic_alr_probing``: every 5 s at 2x the estimate, on for
screenshare) and recovery probes after a large drop (only in or just after
ALR). A stream that fills its target is never in ALR, so libwebrtc finds a
capacity increase mid-call with the AIMD alone: 8 %/s at best, about 12 s
from 1 to 2.5 Mbit/s, and additive (a few kbit/s per second) while the link
capacity estimate from the last overuse still holds.

netlab's GCC therefore runs libwebrtc's periodic probe outside ALR as well,
every ``periodic_interval_ms`` (2 s by default; 0 turns it off for the pure
camera behaviour): when probing is complete and no overuse cut the estimate for one
interval (a transient overuse signal, such as a key frame's burst, does
not count: only a decrease of the delay-based estimate does), one cluster
at 2x the estimate (``alr_probe_scale``) that may
probe further like the initial ones. On a link already full the cluster
(15 ms, at least 5 packets) costs a few ms of queue and its result is
ignored below the current estimate (see ``SendSideBwe``). Time in ms,
injected.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterable

from endpoints.rtc.probing import ProbeCluster

FIRST_EXPONENTIAL_PROBE_SCALE = 3.0
SECOND_EXPONENTIAL_PROBE_SCALE = 6.0
FURTHER_EXPONENTIAL_PROBE_SCALE = 2.0
FURTHER_PROBE_THRESHOLD = 0.7
MAX_WAITING_FOR_PROBE_RESULT_MS = 1_000.0
PERIODIC_PROBE_SCALE = 2.0  # ProbeControllerConfig alr_probe_scale
DEFAULT_PERIODIC_PROBE_INTERVAL_MS = 2_000.0


class ProbingState(enum.Enum):
    INIT = "init"
    WAITING_FOR_RESULT = "waiting"
    COMPLETE = "complete"


class ProbeController:
    def __init__(self, max_bitrate_bps: float, *,
                 periodic_interval_ms: float = DEFAULT_PERIODIC_PROBE_INTERVAL_MS) -> None:
        if periodic_interval_ms < 0:
            raise ValueError("periodic_interval_ms must be >= 0 (0: no periodic probes)")
        self.max_bitrate_bps = max_bitrate_bps
        self.periodic_interval_ms = periodic_interval_ms
        self._last_overuse_ms = -math.inf
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

    def on_overuse(self, now_ms: float) -> None:
        """Overuse cut the delay-based estimate: hold periodic probes off for an interval."""
        self._last_overuse_ms = now_ms

    def process(self, now_ms: float) -> list[ProbeCluster]:
        """Give up waiting 1 s after the last probe; start a periodic probe when due."""
        if (self.state is ProbingState.WAITING_FOR_RESULT and self._last_initiated_ms is not None
                and now_ms - self._last_initiated_ms > MAX_WAITING_FOR_PROBE_RESULT_MS):
            self.state = ProbingState.COMPLETE
            self.min_bitrate_to_probe_further_bps = float("inf")
        if (self.periodic_interval_ms <= 0 or self.state is not ProbingState.COMPLETE
                or self._last_initiated_ms is None
                or self.estimated_bitrate_bps >= self.max_bitrate_bps):
            return []
        quiet_since_ms = max(self._last_initiated_ms, self._last_overuse_ms)
        if now_ms - quiet_since_ms < self.periodic_interval_ms:
            return []
        return self._initiate(now_ms, (PERIODIC_PROBE_SCALE * self.estimated_bitrate_bps,),
                              probe_further=True)

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
