"""Typed scenario objects: what a validated scenario file becomes.

Numbers are SI (seconds, bits per second, fractions); the YAML's unit strings
are parsed once in the loader so nothing downstream re-parses units.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from labcore.units import format_rate
from shaping.spec import LinkShape

EstimatorKind = Literal["gcc", "policy", "fixed", "plugin"]


@dataclass(frozen=True)
class Direction:
    """One direction of a link: a static shape and, later, a trace to replay."""

    shape: LinkShape
    trace: str | None = None
    trace_loop: bool | None = None  # None: the trace format's own habit


@dataclass(frozen=True)
class Host:
    name: str
    sysctls: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # None: the sudo caller, else netlab's system user


@dataclass(frozen=True)
class Link:
    """A point-to-point link; ``up`` shapes a→b, ``down`` shapes b→a."""

    name: str
    a: str
    b: str
    up: Direction
    down: Direction
    capture: tuple[str, ...] = ()  # directions recorded ("up", "down"): netlab.capture


@dataclass(frozen=True)
class Flow:
    """Traffic between two hosts; kind-specific settings live in ``options``.

    ``options`` holds the keys of the flow's kind in
    :mod:`netlab.run.kinds` that the file gave or
    that have a default, already parsed (seconds, bit/s, :class:`Estimator`).
    """

    id: str
    kind: str  # a name registered in netlab.run.kinds
    src: str
    dst: str
    start_s: float = 0.0
    stop_s: float | None = None
    options: dict[str, object] = field(default_factory=dict)

    @property
    def probe_interval_s(self) -> float | None:
        """An RTC flow's GCC periodic probe interval (0: none); None: the sender's default."""
        value = self.options.get("probe_interval")
        return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class Estimator:
    """How an RTC flow sets its target rate (``Flow.options["estimator"]``).

    ``gcc``: the rule-based Google Congestion Control baseline; ``policy``:
    served by the receiver's agent; ``fixed``: a constant ``rate_bps``;
    ``plugin``: an OpenNetLab-style estimator module at ``plugin`` (a path as
    written, relative to the scenario file's directory).
    """

    kind: EstimatorKind
    rate_bps: int | None = None
    plugin: str | None = None

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"fixed:{format_rate(self.rate_bps or 0)}"
        if self.kind == "plugin":
            return f"plugin:{self.plugin}"
        return self.kind


@dataclass(frozen=True)
class Agent:
    host: str
    checkpoint: str | None
    deadline_s: float = 0.001
    fallback: str = "keep"
    device: str = "cpu"  # where the forward pass runs: cpu, or cuda (graphs; else cpu)
    poll_share: float = 0.0  # of one core, for busy-polling (netlab.agent.polling)


@dataclass(frozen=True)
class Scenario:
    name: str
    duration_s: float
    seed: int
    hosts: tuple[Host, ...]
    links: tuple[Link, ...]
    flows: tuple[Flow, ...] = ()
    agents: tuple[Agent, ...] = ()
    subnet: ipaddress.IPv4Network | None = None  # None: chosen to avoid the machine's routes
    source: Path | None = None

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)
