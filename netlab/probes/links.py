"""The built-in link probe: what each link direction really delivers.

A scenario without RTC or TCP flows gets this instead: per link direction
in turn, an idle UDP echo RTT and a TCP bulk transfer measuring the rate.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netlab.errors import NetlabError
from netlab.lab.plan import Interface, LabPlan
from netlab.probes.bulk import bulk_transfer
from netlab.probes.echo import EchoServers, ping

WIRE_GOODPUT = 1448 / 1514  # TCP payload share of a full Ethernet frame (timestamps on)
RAMP_SKIP_S = 0.5
SETTLE_S = 0.2


@dataclass
class ProbeMeasurement:
    link: str
    direction: str  # "up" (a->b) or "down" (b->a)
    src: str
    dst: str
    asked_rate_bps: int | None
    asked_delay_s: float
    recv_rate_bps: float
    rtt_samples_s: list[float] = field(default_factory=list)
    echo_loss: float = 0.0

    def percentile_ms(self, q: float) -> float | None:
        if not self.rtt_samples_s:
            return None
        ordered = sorted(self.rtt_samples_s)
        index = min(len(ordered) - 1, round(q * (len(ordered) - 1)))
        return ordered[index] * 1e3 / 2  # one way: half the idle RTT


def _directions(plan: LabPlan) -> list[tuple[str, str, Interface, Interface]]:
    out = []
    for name, (end_a, end_b) in plan.links.items():
        out.append((name, "up", end_a, end_b))
        out.append((name, "down", end_b, end_a))
    return out


def probe_links(plan: LabPlan, duration_s: float,
                progress: Callable[[str, float], None] | None = None) -> list[ProbeMeasurement]:
    """Measure every link direction in turn within ``duration_s``."""
    directions = _directions(plan)
    if not directions:
        raise NetlabError("the scenario has no links to probe", where="links",
                          fix="add at least one link")
    slice_s = max(1.0, duration_s / len(directions))
    results: list[ProbeMeasurement] = []
    namespaces = [h.namespace for h in plan.hosts.values()]
    with EchoServers(namespaces):
        for index, (link, direction, out, into) in enumerate(directions):
            if progress:
                progress(f"{link} {direction}", index / len(directions))
            src_ns = plan.hosts[out.host].namespace
            dst_ns = plan.hosts[into.host].namespace
            time.sleep(SETTLE_S)  # let the previous probe's queues drain
            echo = ping(src_ns, str(into.address.ip), count=20, interval_s=0.005)
            bulk = bulk_transfer(src_ns, dst_ns, str(into.address.ip), slice_s,
                                 port=5201 + index)
            results.append(ProbeMeasurement(
                link, direction, out.host, into.host, out.egress.shape.rate_bps,
                out.egress.shape.delay_s, bulk.rate_bps(skip_s=min(RAMP_SKIP_S, slice_s / 3)),
                list(echo.rtts_s), echo.loss))
    if progress:
        progress("done", 1.0)
    return results


def probe_flow_results(measurements: list[ProbeMeasurement]) -> list[dict[str, Any]]:
    flows = []
    for m in measurements:
        flows.append({
            "id": f"probe-{m.link}-{m.direction}",
            "kind": "probe",
            "from": m.src,
            "to": m.dst,
            "cc": "cubic",
            "metrics": {
                "recv_rate_bps": m.recv_rate_bps,
                "delay_p50_ms": m.percentile_ms(0.5),
                "delay_p95_ms": m.percentile_ms(0.95),
                "delay_p99_ms": m.percentile_ms(0.99),
                "loss": m.echo_loss,
                "rtt_idle_ms": (statistics.median(m.rtt_samples_s) * 1e3
                                if m.rtt_samples_s else None),
                "asked_rate_bps": m.asked_rate_bps,
                "goodput_over_rate": (m.recv_rate_bps / m.asked_rate_bps
                                      if m.asked_rate_bps else None),
            },
            "scores": {},
        })
    return flows
