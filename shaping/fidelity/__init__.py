"""How closely emulated links did what was asked: the fidelity report of every run.

Per link direction: change timing (scheduled vs applied, p50/p99/max),
capacity tracking (MAPE of the delivered rate vs the trace's capacity per
500 ms bin while backlogged), added delay (seen vs asked, p50/p99) and loss
(asked vs seen).  ``assess`` turns those into the results-contract section
with a ``faithful`` flag and plain-words verdicts.  Pure functions of logs:
nothing here touches a network.
"""

from __future__ import annotations

from shaping.fidelity.capacity import (
    DEFAULT_BIN_S,
    CapacityBins,
    asked_from_changes,
    asked_from_trace,
    bin_edges,
    kernel_bins,
    packet_bins,
)
from shaping.fidelity.packets import delay_errors_ns, loss_asked_seen, served_ns
from shaping.fidelity.report import DirectionFidelity, FidelityThresholds, assess
from shaping.fidelity.series import StepSeries, percentiles_ms, step_series
from shaping.fidelity.sources import kernel_direction, timing_errors_ns, userlink_direction

__all__ = [
    "DEFAULT_BIN_S",
    "CapacityBins",
    "DirectionFidelity",
    "FidelityThresholds",
    "StepSeries",
    "asked_from_changes",
    "asked_from_trace",
    "assess",
    "bin_edges",
    "delay_errors_ns",
    "kernel_bins",
    "kernel_direction",
    "loss_asked_seen",
    "packet_bins",
    "percentiles_ms",
    "served_ns",
    "step_series",
    "timing_errors_ns",
    "userlink_direction",
]
