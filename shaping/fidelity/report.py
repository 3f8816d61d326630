"""Thresholds, per-direction results and the verdict: the ``fidelity`` section of results.json.

Shape (DESIGN.md results contract)::

    {faithful, links: [{link, direction, timing_err_ms {p50, p99, max},
     capacity_mape, delay_err_ms {p50, p99}, loss_asked, loss_seen, ...}],
     thresholds: {...}, verdicts: [plain-words strings]}

A metric that could not be measured is ``null`` and said so in a verdict;
it does not make the run unfaithful by itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class FidelityThresholds:
    """Above these a run is marked not faithful (all configurable).

    ``loss_abs`` is the tolerance on ``|seen - asked|`` loss beyond three
    binomial standard deviations of the packet count (a 1 % loss over 1000
    packets may honestly be seen as 1.6 %).
    """

    timing_p99_ms: float = 2.0
    capacity_mape: float = 0.05
    delay_err_p99_ms: float = 1.0
    loss_abs: float = 0.005

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"fidelity threshold {name} must be a number >= 0")

    def as_dict(self) -> dict[str, float]:
        """Keys as results.json names them (``netlab.results`` reads two of them)."""
        return {
            "timing_err_ms_p99": self.timing_p99_ms,
            "capacity_mape": self.capacity_mape,
            "delay_err_ms_p99": self.delay_err_p99_ms,
            "loss_abs_error": self.loss_abs,
        }

    def loss_tolerance(self, asked: float, packets: int) -> float:
        sigma = math.sqrt(max(asked * (1 - asked), 0.0) / packets) if packets else 0.0
        return self.loss_abs + 3 * sigma


@dataclass
class DirectionFidelity:
    """What was measured for one direction of one link."""

    link: str
    direction: str
    timing_err_ms: dict[str, float] | None = None
    capacity_mape: float | None = None
    capacity_bins: int = 0  # backlogged 500 ms bins the MAPE is over
    capacity_bins_total: int = 0
    capacity_err_max: float | None = None
    delay_err_ms: dict[str, float] | None = None
    loss_asked: float | None = None
    loss_seen: float | None = None
    loss_packets: int = 0
    changes: int = 0
    skipped_changes: int = 0
    source: str = ""  # "kernel replay log", "user-space link log", ...
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _judge(entry: DirectionFidelity, th: FidelityThresholds) -> tuple[list[str], list[str]]:
    """``(failures, unmeasured)`` in plain words for one direction."""
    name = f"link {entry.link} ({entry.direction})"
    failures: list[str] = []
    unmeasured: list[str] = []
    # A static link has no changes to time: timing_err_ms stays None, no verdict.
    if entry.timing_err_ms is not None and entry.timing_err_ms["p99"] > th.timing_p99_ms:
        failures.append(
            f"{name}: capacity changes took effect {entry.timing_err_ms['p99']:.2f} ms late at "
            f"p99 (limit {th.timing_p99_ms:g} ms, worst {entry.timing_err_ms['max']:.1f} ms), so "
            "the link did not follow the trace's timing."
        )
    if entry.capacity_mape is None:
        if entry.capacity_bins_total:
            unmeasured.append(
                f"{name}: capacity tracking not checked: the link was never backlogged for a "
                "whole 500 ms bin (no flow saturated it)."
            )
    elif entry.capacity_mape > th.capacity_mape:
        failures.append(
            f"{name}: the delivered rate missed the trace's capacity by {_pct(entry.capacity_mape)}"
            f" on average over {entry.capacity_bins} backlogged 500 ms bins (limit "
            f"{_pct(th.capacity_mape)})."
        )
    if entry.delay_err_ms is not None and entry.delay_err_ms["p99"] > th.delay_err_p99_ms:
        failures.append(
            f"{name}: packets were held {entry.delay_err_ms['p99']:.2f} ms longer than the asked "
            f"delay at p99 (limit {th.delay_err_p99_ms:g} ms)."
        )
    if entry.loss_asked is not None and entry.loss_seen is not None and entry.loss_packets:
        tolerance = th.loss_tolerance(entry.loss_asked, entry.loss_packets)
        if abs(entry.loss_seen - entry.loss_asked) > tolerance:
            failures.append(
                f"{name}: {_pct(entry.loss_seen)} of packets were lost where "
                f"{_pct(entry.loss_asked)} was asked (tolerance ±{_pct(tolerance)} over "
                f"{entry.loss_packets} packets)."
            )
    return failures, unmeasured


def assess(directions: list[DirectionFidelity],
           thresholds: FidelityThresholds | None = None) -> dict[str, Any]:
    """The fidelity section: per-direction figures, ``faithful`` and plain-words verdicts."""
    th = thresholds or FidelityThresholds()
    failures: list[str] = []
    unmeasured: list[str] = []
    for entry in directions:
        bad, unknown = _judge(entry, th)
        failures += bad
        unmeasured += unknown
    faithful = not failures
    verdicts: list[str] = []
    if faithful:
        limits = (f"timing p99 ≤ {th.timing_p99_ms:g} ms, capacity error ≤ "
                  f"{_pct(th.capacity_mape)}, delay error p99 ≤ {th.delay_err_p99_ms:g} ms")
        verdicts.append(
            f"Faithful: all {len(directions)} link directions did what the scenario asked "
            f"within the thresholds ({limits})."
        )
    else:
        verdicts.append(
            f"NOT faithful: {len(failures)} problem(s) found; results from this run do not "
            "reflect the scenario as written."
        )
        verdicts += failures
    verdicts += unmeasured
    return {
        "faithful": faithful,
        "links": [entry.to_dict() for entry in directions],
        "thresholds": th.as_dict(),
        "verdicts": verdicts,
    }
