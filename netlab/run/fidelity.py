"""Collects how faithfully a run's links did what was asked.

Each link direction is judged from the best evidence its backend leaves:
the replayer's log (kernel, traced), the user-space link's per-packet log
(user backend), or the link probe's measurement (kernel, static shape);
``shaping.fidelity.assess`` applies the thresholds and writes the verdicts.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from netlab.lab.plan import LabPlan
from netlab.probes.links import WIRE_GOODPUT, ProbeMeasurement
from shaping.fidelity import DirectionFidelity, FidelityThresholds, assess
from shaping.fidelity.machine import MachineLoad
from shaping.fidelity.series import percentiles_ms
from shaping.fidelity.sources import kernel_direction, userlink_direction
from shaping.replay.log import ReplayLog
from shaping.replay.replayer import DEFAULT_SAMPLE_INTERVAL_NS
from shaping.traces import load_trace
from shaping.userlink import UserLinkHandle, read_change_log, read_packet_log

_USER_DIRECTION = {"up": "a_to_b", "down": "b_to_a"}


def from_probe(m: ProbeMeasurement) -> DirectionFidelity:
    """A static kernel direction: capacity from the TCP probe's goodput (vs
    the rate's TCP payload share), added delay from half the idle echo RTT
    (exact only for symmetric delays, which static kernel links without netem
    always have: zero both ways)."""
    entry = DirectionFidelity(m.link, m.direction, source="link probe")
    if m.asked_rate_bps:
        expected = m.asked_rate_bps * WIRE_GOODPUT
        entry.capacity_mape = abs(m.recv_rate_bps - expected) / expected
        entry.capacity_bins = entry.capacity_bins_total = 1
    if m.rtt_samples_s:
        errors_ns = [abs(r / 2 - m.asked_delay_s) * 1e9 for r in m.rtt_samples_s]
        entry.delay_err_ms = percentiles_ms(errors_ns, ("p50", "p99"))
    return entry


def collect(plan: LabPlan, *, probes: list[ProbeMeasurement],
            replay_logs: dict[tuple[str, str], ReplayLog],
            user_links: dict[str, UserLinkHandle], start_ns: int,
            base_dir: Path | None = None,
            thresholds: FidelityThresholds | None = None,
            machine: MachineLoad | None = None,
            sample_interval_ns: int = DEFAULT_SAMPLE_INTERVAL_NS) -> dict[str, Any]:
    """``sample_interval_ns``: how often the replayers sampled their qdisc's counters."""
    entries: list[DirectionFidelity] = []
    measured = {(m.link, m.direction): m for m in probes}
    for name, (end_a, end_b) in plan.links.items():
        for direction, iface in (("up", end_a), ("down", end_b)):
            key = (name, direction)
            if name in user_links:
                paths = user_links[name].log_paths()
                side = _USER_DIRECTION[direction]
                trace = (load_trace(iface.egress.trace, base_dir=base_dir)
                         if iface.egress.trace is not None else None)
                entries.append(userlink_direction(
                    name, direction, read_packet_log(paths[side]),
                    read_change_log(paths[f"{side}_changes"]), start_ns=start_ns, trace=trace))
            elif key in replay_logs:
                probe = measured.get(key)
                delay_errors = None
                if probe and probe.rtt_samples_s:
                    delay_errors = [abs(r / 2 - probe.asked_delay_s) * 1e9
                                    for r in probe.rtt_samples_s]
                trace = (load_trace(iface.egress.trace, base_dir=base_dir)
                         if iface.egress.trace is not None else None)
                if trace is not None and iface.egress.trace_loop is not None:
                    trace = replace(trace, loop=iface.egress.trace_loop)
                entries.append(kernel_direction(name, direction, replay_logs[key],
                                                delay_errors=delay_errors, trace=trace,
                                                sample_interval_ns=sample_interval_ns))
            elif key in measured:
                entries.append(from_probe(measured[key]))
            elif iface.egress.shape.rate_bps is not None:
                entries.append(DirectionFidelity(name, direction, source="not measured",
                                                 notes=["no flow measured this direction"]))
    return assess(entries, thresholds or FidelityThresholds(), machine)
