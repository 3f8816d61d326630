"""Scenario objects built in code, so lab tests do not depend on YAML."""

from __future__ import annotations

import os

from netlab.scenario.model import Direction, Host, Link, Scenario
from shaping.spec import LinkShape


def unique_lab(prefix: str) -> str:
    """Lab names unique per test process (lab names are ≤ 12 characters)."""
    return f"{prefix}{os.getpid() % 10000}"[:12]


def link(a: str, b: str, rate_bps: int | None = None, *, name: str | None = None) -> Link:
    shape = Direction(LinkShape(rate_bps=rate_bps))
    return Link(name or f"{a}-{b}", a, b, shape, shape)


def scenario(name: str, hosts: list[str], links: list[Link], *, duration_s: float = 2.0,
             sysctls: dict[str, dict[str, str]] | None = None) -> Scenario:
    return Scenario(
        name=name, duration_s=duration_s, seed=1,
        hosts=tuple(Host(h, (sysctls or {}).get(h, {})) for h in hosts),
        links=tuple(links),
    )


def two_hosts(name: str, rate_bps: int | None = 10_000_000) -> Scenario:
    return scenario(name, ["alice", "bob"], [link("alice", "bob", rate_bps)])


def line(name: str) -> Scenario:
    return scenario(name, ["alice", "router", "bob"],
                    [link("alice", "router"), link("router", "bob", 10_000_000)])


def dumbbell(name: str, pairs: int) -> Scenario:
    senders = [f"s{i}" for i in range(pairs)]
    receivers = [f"r{i}" for i in range(pairs)]
    links = [link(s, "left") for s in senders] + [link("left", "right", 20_000_000)]
    links += [link("right", r) for r in receivers]
    return scenario(name, [*senders, "left", "right", *receivers], links)
