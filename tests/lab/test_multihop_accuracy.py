"""Shaping holds end to end across a router, for every kernel CC.

Packets are built (and GSO-sized) on the sender's own interface, two hops
before the shaped one; this pins the lab-wide GSO limit that keeps BBR from
stalling behind a byte-limited leaf.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netlab.lab import lifecycle
from netlab.probes.bulk import bulk_transfer
from netlab.scenario.model import Direction, Link
from shaping.spec import LinkShape, QueueLimit
from tests.lab.scenarios import scenario, unique_lab

RATE_BPS = 5_000_000
CEILING = 1448 / 1514


@pytest.fixture
def line_lab() -> Iterator[lifecycle.Lab]:
    bottleneck = Direction(LinkShape(rate_bps=RATE_BPS, queue=QueueLimit(bytes=30_000)))
    plain = Direction(LinkShape())
    s = scenario(unique_lab("tmh"), ["alice", "router", "bob"], [
        Link("access", "alice", "router", plain, plain),
        Link("bottleneck", "router", "bob", bottleneck, bottleneck),
    ])
    lab = lifecycle.up(s)
    yield lab
    lab.down()


@pytest.mark.slow
@pytest.mark.parametrize("cc", ["reno", "cubic", "bbr"])
def test_goodput_across_a_router(line_lab: lifecycle.Lab, cc: str) -> None:
    plan = line_lab.plan
    result = bulk_transfer(plan.hosts["alice"].namespace, plan.hosts["bob"].namespace,
                           str(plan.hosts["bob"].address), 4.0, cc=cc)
    ratio = result.rate_bps(skip_s=1.0) / RATE_BPS
    assert 0.95 <= ratio <= CEILING + 0.01, f"{cc}: goodput/rate {ratio:.3f}"
