"""The link probe: what a link direction (or a path) really delivers.

It sends traffic, so it only runs when asked: ``netlab check LAB --rate``
(every link direction in turn) or a ``kind: probe`` flow (its own path).
Each measurement is an idle UDP echo RTT, then a TCP bulk transfer.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from netlab.errors import NetlabError
from netlab.lab.plan import Interface, LabPlan, egress_path
from netlab.probes.bulk import bulk_transfer
from netlab.probes.echo import ECHO_PORT, EchoServers, ping
from netlab.run.results import FlowResult

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


def path_direction(plan: LabPlan, src: str, dst: str) -> tuple[str, str]:
    """(link, direction) of a one-hop path; a longer path is named by its links."""
    hops = egress_path(plan, src, plan.hosts[dst].address)
    if len(hops) == 1:
        end_a, _ = plan.links[hops[0].link]
        return hops[0].link, "up" if end_a.host == src else "down"
    return "+".join(h.link for h in hops), "path"


def probe_path(plan: LabPlan, src: str, dst: str, seconds: float, *, port: int,
               echo_port: int = ECHO_PORT,
               interval_s: float = 0.005, size: int | None = None) -> ProbeMeasurement:
    """An idle echo RTT then a TCP bulk transfer from ``src`` to ``dst``.

    The rate is asked of the path's first hop, its delay is the path's sum."""
    hops = egress_path(plan, src, plan.hosts[dst].address)
    link, direction = path_direction(plan, src, dst)
    src_ns, dst_ns = plan.hosts[src].namespace, plan.hosts[dst].namespace
    target = str(plan.hosts[dst].address)
    rates = [h.egress.shape.rate_bps for h in hops if h.egress.shape.rate_bps is not None]
    began = time.monotonic()
    with EchoServers([dst_ns], port=echo_port):
        echo = ping(src_ns, target, count=20, interval_s=interval_s, size=size, port=echo_port)
    rest = seconds - (time.monotonic() - began)
    bulk = bulk_transfer(src_ns, dst_ns, target, max(1.0, rest), port=port)
    return ProbeMeasurement(link, direction, src, dst, min(rates) if rates else None,
                            sum(h.egress.shape.delay_s for h in hops),
                            bulk.rate_bps(skip_s=min(RAMP_SKIP_S, seconds / 3)),
                            list(echo.rtts_s), echo.loss)


def probe_flow_results(measurements: list[ProbeMeasurement]) -> list[FlowResult]:
    flows = []
    for m in measurements:
        flows.append(FlowResult(
            f"probe-{m.link}-{m.direction}", "probe", m.src, m.dst, {"cc": "cubic"},
            {
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
            }))
    return flows
