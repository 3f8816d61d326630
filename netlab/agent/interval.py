"""How often an RTC policy flow asks its agent, and over what window it observes.

A policy is served at the step it was trained with unless the scenario says
otherwise: OpenNetLab's model was trained on 60 ms steps (their
``BandwidthEstimator(step_time=60)``) and was served every 200 ms before
flows had a ``decision_interval``. The receiver's observation window follows
the interval, as OpenNetLab's does its step, unless the checkpoint declares a
window of its own (netlab's simulator trains on a 60 ms window at 200 ms
steps). TCP policy flows decide once per monitor interval instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from endpoints.rtc.estimators import DEFAULT_POLL_INTERVAL_S

MIN_INTERVAL_S = 0.010
MAX_INTERVAL_S = 1.0
RANGE_TEXT = "a decision interval from 10ms to 1s"
#: Without a step in the checkpoint: the RTC receiver's poll interval.
UNKNOWN_STEP_INTERVAL_S = DEFAULT_POLL_INTERVAL_S


@dataclass(frozen=True)
class DecisionTiming:
    interval_s: float
    window_ms: float
    source: str  # where the interval came from, in words

    def describe(self) -> str:
        return (f"every {self.interval_s * 1e3:g} ms ({self.source}), window "
                f"{self.window_ms:g} ms")


def in_range(seconds: float) -> bool:
    return MIN_INTERVAL_S - 1e-12 <= seconds <= MAX_INTERVAL_S + 1e-12


def decision_timing(asked_s: float | None, step_ms: float | None,
                    window_ms: float | None) -> DecisionTiming:
    """The interval a flow uses: the scenario's, else the checkpoint's step (held to
    the 10 ms – 1 s range), else the receiver's default poll; and its window."""
    if asked_s is not None:
        interval, source = asked_s, "decision_interval"
    elif step_ms is not None:
        interval = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, step_ms / 1e3))
        source = "the checkpoint's step"
    else:
        interval, source = UNKNOWN_STEP_INTERVAL_S, "no step in the checkpoint: the default"
    window = window_ms if window_ms is not None else interval * 1e3
    return DecisionTiming(interval, window, source)
