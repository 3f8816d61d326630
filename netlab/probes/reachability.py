"""Reachability and RTT between every pair of lab hosts, against the plan.

The expected RTT is the sum of the delays the scenario asks for on the
forward and the reverse path (as the plan's routes send packets), so a
mis-shaped or mis-routed link shows up as a difference, not just a number.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from netlab.lab.plan import LabPlan, egress_path
from netlab.probes.echo import EchoServers, ping

TOLERANCE_S = 0.001  # absolute slack for scheduling noise
TOLERANCE_FRACTION = 0.05


@dataclass(frozen=True)
class PairCheck:
    src: str
    dst: str
    address: str
    sent: int
    received: int
    rtt_p50_s: float | None
    rtt_max_s: float | None
    expected_rtt_s: float

    @property
    def ok(self) -> bool:
        if self.received == 0 or self.rtt_p50_s is None:
            return False
        slack = TOLERANCE_S + TOLERANCE_FRACTION * self.expected_rtt_s
        return abs(self.rtt_p50_s - self.expected_rtt_s) <= slack


def expected_rtt_s(plan: LabPlan, src: str, dst: str) -> float:
    forward = egress_path(plan, src, plan.hosts[dst].address)
    reverse = egress_path(plan, dst, plan.hosts[src].address)
    return sum(i.egress.shape.delay_s for i in forward + reverse)


def check_all_pairs(plan: LabPlan, *, count: int = 10) -> list[PairCheck]:
    results: list[PairCheck] = []
    with EchoServers([h.namespace for h in plan.hosts.values()]):
        for src in plan.hosts.values():
            for dst in plan.hosts.values():
                if src is dst:
                    continue
                echo = ping(src.namespace, str(dst.address), count=count, interval_s=0.002)
                results.append(PairCheck(
                    src.name, dst.name, str(dst.address), echo.sent, echo.received,
                    statistics.median(echo.rtts_s) if echo.rtts_s else None,
                    max(echo.rtts_s) if echo.rtts_s else None,
                    expected_rtt_s(plan, src.name, dst.name)))
    return results
