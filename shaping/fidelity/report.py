"""Thresholds, per-direction results and the verdict: the ``fidelity`` section of results.json.

Shape (docs/design.md results contract)::

    {faithful, links: [{link, direction, timing_err_ms {p50, p99, max},
     capacity_mape, delay_err_ms {p50, p99}, loss_asked, loss_seen, ...}],
     thresholds: {...}, verdicts: [plain-words strings]}

A metric that could not be measured is ``null`` and said so in a verdict;
it does not make the run unfaithful by itself.  Means never decide alone:
one backlogged bin that delivered under half (or over 1.5x) its capacity
fails the run, and so does a delay tail (p99.9, max) over its limit; the
verdict names the worst bin, and says when the machine itself (a saturated
CPU, a starved or throttled link process) was measured to be the cause.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from shaping.fidelity.capacity import DEFAULT_BIN_S, FRAME_BITS, MIN_JUDGED_FRAMES
from shaping.fidelity.machine import MachineLoad


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
    bin_ratio_low: float = 0.5  # a backlogged bin delivering less than this x capacity fails
    bin_ratio_high: float = 1.5  # ... or more than this
    #: ... and off by more than this many full frames: a bin whose capacity is two
    #: frames (the end of an outage) is 1.5x off by one frame, which is no stall.
    bin_slack_frames: float = 2.0
    delay_err_p999_ms: float = 5.0
    delay_err_max_ms: float = 50.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"fidelity threshold {name} must be a number >= 0")

    def as_dict(self) -> dict[str, float]:
        """Keys as results.json names them (``netlab.run.results`` reads two of them)."""
        return {
            "timing_err_ms_p99": self.timing_p99_ms,
            "capacity_mape": self.capacity_mape,
            "delay_err_ms_p99": self.delay_err_p99_ms,
            "loss_abs_error": self.loss_abs,
            "bin_ratio_low": self.bin_ratio_low,
            "bin_ratio_high": self.bin_ratio_high,
            "bin_slack_frames": self.bin_slack_frames,
            "delay_err_ms_p999": self.delay_err_p999_ms,
            "delay_err_ms_max": self.delay_err_max_ms,
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
    #: Every counted bin: ``{t_s, asked_bps, delivered_bps}``, t_s from the run's start.
    capacity_by_bin: list[dict[str, float]] = field(default_factory=list)
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


def _ratio(b: dict[str, float]) -> float:
    return b["delivered_bps"] / b["asked_bps"]


def worst_bin(entry: DirectionFidelity) -> dict[str, float] | None:
    """The counted bin farthest from its capacity (relative error), or None."""
    if not entry.capacity_by_bin:
        return None
    return max(entry.capacity_by_bin, key=lambda b: abs(_ratio(b) - 1))


def describe_bin(b: dict[str, float], bin_s: float = 0.5) -> str:
    return (f"{b['t_s']:.1f}-{b['t_s'] + bin_s:.1f} s delivered "
            f"{b['delivered_bps'] / 1e6:.2f} of {b['asked_bps'] / 1e6:.2f} Mbit/s "
            f"({(_ratio(b) - 1) * 100:+.1f} %)")


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
    worst = worst_bin(entry)
    where_worst = f"; worst bin {describe_bin(worst)}" if worst is not None else ""
    if entry.capacity_mape is None:
        if entry.capacity_by_bin:
            unmeasured.append(
                f"{name}: capacity tracking not checked by bytes: its backlogged bins were "
                f"asked for under {MIN_JUDGED_FRAMES} full frames each (the per-bin check "
                "still applies)."
            )
        elif entry.capacity_bins_total:
            unmeasured.append(
                f"{name}: capacity tracking not checked: the link was never backlogged for a "
                "whole 500 ms bin (no flow saturated it)."
            )
    elif entry.capacity_mape > th.capacity_mape:
        failures.append(
            f"{name}: the delivered rate missed the trace's capacity by {_pct(entry.capacity_mape)}"
            f" on average over {entry.capacity_bins} backlogged 500 ms bins (limit "
            f"{_pct(th.capacity_mape)}){where_worst}."
        )
    slack_bps = th.bin_slack_frames * FRAME_BITS / DEFAULT_BIN_S
    extreme = [b for b in entry.capacity_by_bin
               if not th.bin_ratio_low <= _ratio(b) <= th.bin_ratio_high
               and abs(b["delivered_bps"] - b["asked_bps"]) > slack_bps]
    if extreme and worst is not None:
        failures.append(
            f"{name}: {len(extreme)} backlogged 500 ms bin(s) delivered outside "
            f"{th.bin_ratio_low:g}-{th.bin_ratio_high:g}x the trace's capacity (a stalled or "
            f"runaway link, whatever the mean); worst: {describe_bin(worst)}."
        )
    delay = entry.delay_err_ms or {}
    if delay.get("p99", 0.0) > th.delay_err_p99_ms:
        failures.append(
            f"{name}: packets were held {delay['p99']:.2f} ms longer than the asked "
            f"delay at p99 (limit {th.delay_err_p99_ms:g} ms)."
        )
    for key, label, limit in (("p999", "p99.9", th.delay_err_p999_ms),
                              ("max", "worst", th.delay_err_max_ms)):
        if key in delay and delay[key] > limit:
            failures.append(
                f"{name}: the {label} packet was held {delay[key]:.2f} ms longer than the "
                f"asked delay (limit {limit:g} ms)."
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


def _worst_overall(directions: list[DirectionFidelity]) -> str | None:
    scored = [(abs(_ratio(b) - 1), e, b) for e in directions
              if (b := worst_bin(e)) is not None]
    if not scored:
        return None
    _, entry, b = max(scored, key=lambda item: item[0])
    return f"worst backlogged bin: link {entry.link} ({entry.direction}) {describe_bin(b)}"


def assess(directions: list[DirectionFidelity],
           thresholds: FidelityThresholds | None = None,
           machine: MachineLoad | None = None) -> dict[str, Any]:
    """The fidelity section: per-direction figures, ``faithful`` and plain-words verdicts.

    ``machine`` (``shaping.fidelity.machine``) adds what the CPU and the
    link processes' scheduling measured over the run; its causes are named
    in the verdict but do not by themselves make a run unfaithful.
    """
    th = thresholds or FidelityThresholds()
    failures: list[str] = []
    unmeasured: list[str] = []
    for entry in directions:
        bad, unknown = _judge(entry, th)
        failures += bad
        unmeasured += unknown
    faithful = not failures
    worst = _worst_overall(directions)
    tail = f"; {worst}" if worst else ""
    verdicts: list[str] = []
    if faithful:
        limits = (f"timing p99 ≤ {th.timing_p99_ms:g} ms, capacity error ≤ "
                  f"{_pct(th.capacity_mape)} on average and every bin within "
                  f"{th.bin_ratio_low:g}-{th.bin_ratio_high:g}x or {th.bin_slack_frames:g} "
                  f"frames, delay error p99 ≤ {th.delay_err_p99_ms:g} ms")
        verdicts.append(
            f"Faithful: all {len(directions)} link directions did what the scenario asked "
            f"within the thresholds ({limits}){tail}."
        )
    else:
        verdicts.append(
            f"NOT faithful: {len(failures)} problem(s) found; results from this run do not "
            f"reflect the scenario as written{tail}."
        )
        verdicts += failures
    if machine is not None and machine.causes:
        lead = ("The machine itself was a cause" if not faithful
                else "The machine was under strain (the links still kept up)")
        verdicts.append(f"{lead}: {'; '.join(machine.causes)}.")
    verdicts += unmeasured
    report: dict[str, Any] = {
        "faithful": faithful,
        "links": [entry.to_dict() for entry in directions],
        "thresholds": th.as_dict(),
        "verdicts": verdicts,
    }
    if machine is not None:
        report["machine"] = machine.to_dict()
    return report
