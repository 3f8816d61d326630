"""What one user-space link is asked to do, and how that travels to its process.

The lab builds a :class:`UserLinkSpec`; the link process receives it as JSON
(written into the run directory, so a run keeps the exact spec it ran with).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shaping.spec import LinkShape, QueueLimit
from shaping.traces import Trace

DirectionName = Literal["a_to_b", "b_to_a"]
DIRECTIONS: tuple[DirectionName, DirectionName] = ("a_to_b", "b_to_a")
QueuePolicy = Literal["droptail", "drophead"]

# netem's default limit is 1000 packets; used when a shape names no queue bound.
DEFAULT_QUEUE = QueueLimit(packets=1000)


@dataclass(frozen=True)
class DirectionConfig:
    """One direction of the link.

    ``opportunities_ms``: a Mahimahi trace (one delivery opportunity of 1504
    bytes per line, in ms); it replaces ``shape.rate_bps`` and loops with a
    period equal to its last value, as mm-link does.  ``schedule``: piecewise
    shapes, ``(t seconds from start, shape)``, repeating every ``loop_s`` when
    set.  ``gilbert``: Gilbert-Elliott loss as netem's ``gemodel`` orders its
    four numbers: ``(p, r, bad_loss, good_loss)`` = (P good→bad, P bad→good,
    loss probability in the bad state "1-h", loss probability in the good
    state "1-k"); when set it replaces the IID ``shape.loss``.  ``reorder``:
    jitter may reorder packets (otherwise a packet never overtakes the one
    before it).  ``burst_bytes``: token-bucket depth (default: one largest
    packet, so the link behaves like a wire rather than a burst-letting tbf).
    """

    shape: LinkShape
    opportunities_ms: tuple[int, ...] | None = None
    schedule: tuple[tuple[float, LinkShape], ...] = ()
    loop_s: float | None = None
    gilbert: tuple[float, float, float, float] | None = None
    seed: int = 0
    queue_policy: QueuePolicy = "droptail"
    reorder: bool = False
    burst_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.opportunities_ms is not None:
            opps = self.opportunities_ms
            if not opps:
                raise ValueError("opportunities_ms is empty: a Mahimahi trace needs a line")
            if any(b < a for a, b in itertools.pairwise(opps)) or opps[0] < 0:
                raise ValueError("opportunities_ms must be non-negative and non-decreasing")
            if opps[-1] <= 0:
                raise ValueError("opportunities_ms must last a nonzero time (last value > 0)")
        if self.gilbert is not None and not all(0.0 <= x <= 1.0 for x in self.gilbert):
            raise ValueError("gilbert (p, r, bad_loss, good_loss) must be probabilities")
        if self.loop_s is not None and self.loop_s <= 0:
            raise ValueError("loop_s must be positive when set")
        if any(t < 0 for t, _ in self.schedule):
            raise ValueError("schedule times must be >= 0 s")
        if self.loop_s is not None and any(t >= self.loop_s for t, _ in self.schedule):
            raise ValueError("schedule times must be < loop_s when the schedule loops")
        if self.queue_policy not in ("droptail", "drophead"):
            raise ValueError("queue_policy must be 'droptail' or 'drophead'")


@dataclass(frozen=True)
class UserLinkSpec:
    """A whole link: its two interfaces, both directions, where logs go."""

    link_id: str
    ns_a: str
    if_a: str
    ns_b: str
    if_b: str
    a_to_b: DirectionConfig
    b_to_a: DirectionConfig
    run_dir: Path
    extra: dict[str, str] = field(default_factory=dict)
    #: CLOCK_MONOTONIC instant the traces count from (None: the process's start).
    #: A lab gives all its links one, so no link's trace runs ahead of another's.
    start_ns: int | None = None

    def direction(self, name: DirectionName) -> DirectionConfig:
        return self.a_to_b if name == "a_to_b" else self.b_to_a


# --- JSON round trip (the link process is a separate interpreter) ---------


def shape_to_json(shape: LinkShape) -> dict[str, Any]:
    queue = None
    if shape.queue is not None:
        queue = {"packets": shape.queue.packets, "bytes": shape.queue.bytes}
    return {
        "rate_bps": shape.rate_bps,
        "delay_s": shape.delay_s,
        "jitter_s": shape.jitter_s,
        "loss": shape.loss,
        "queue": queue,
    }


def shape_from_json(data: dict[str, Any]) -> LinkShape:
    queue_data = data.get("queue")
    queue = None
    if queue_data is not None:
        queue = QueueLimit(packets=queue_data.get("packets"), bytes=queue_data.get("bytes"))
    rate = data.get("rate_bps")
    return LinkShape(
        rate_bps=None if rate is None else int(rate),
        delay_s=float(data.get("delay_s", 0.0)),
        jitter_s=float(data.get("jitter_s", 0.0)),
        loss=float(data.get("loss", 0.0)),
        queue=queue,
    )


def _direction_to_json(cfg: DirectionConfig) -> dict[str, Any]:
    return {
        "shape": shape_to_json(cfg.shape),
        "opportunities_ms": None if cfg.opportunities_ms is None else list(cfg.opportunities_ms),
        "schedule": [[t, shape_to_json(s)] for t, s in cfg.schedule],
        "loop_s": cfg.loop_s,
        "gilbert": None if cfg.gilbert is None else list(cfg.gilbert),
        "seed": cfg.seed,
        "queue_policy": cfg.queue_policy,
        "reorder": cfg.reorder,
        "burst_bytes": cfg.burst_bytes,
    }


def _four(values: list[Any]) -> tuple[float, float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]), float(values[3]))


def _direction_from_json(data: dict[str, Any]) -> DirectionConfig:
    opps = data.get("opportunities_ms")
    gil = data.get("gilbert")
    return DirectionConfig(
        shape=shape_from_json(data["shape"]),
        opportunities_ms=None if opps is None else tuple(int(x) for x in opps),
        schedule=tuple((float(t), shape_from_json(s)) for t, s in data.get("schedule", [])),
        loop_s=data.get("loop_s"),
        gilbert=None if gil is None else _four(gil),
        seed=int(data.get("seed", 0)),
        queue_policy=data.get("queue_policy", "droptail"),
        reorder=bool(data.get("reorder", False)),
        burst_bytes=data.get("burst_bytes"),
    )


def spec_to_json(spec: UserLinkSpec) -> str:
    return json.dumps(
        {
            "link_id": spec.link_id,
            "ns_a": spec.ns_a,
            "if_a": spec.if_a,
            "ns_b": spec.ns_b,
            "if_b": spec.if_b,
            "a_to_b": _direction_to_json(spec.a_to_b),
            "b_to_a": _direction_to_json(spec.b_to_a),
            "run_dir": str(spec.run_dir),
            "extra": spec.extra,
            "start_ns": spec.start_ns,
        },
        indent=1,
    )


def spec_from_json(text: str) -> UserLinkSpec:
    data = json.loads(text)
    return UserLinkSpec(
        link_id=data["link_id"],
        ns_a=data["ns_a"],
        if_a=data["if_a"],
        ns_b=data["ns_b"],
        if_b=data["if_b"],
        a_to_b=_direction_from_json(data["a_to_b"]),
        b_to_a=_direction_from_json(data["b_to_a"]),
        run_dir=Path(data["run_dir"]),
        extra=dict(data.get("extra", {})),
        start_ns=data.get("start_ns"),
    )


def traced_direction(trace: Trace, base: LinkShape, *, seed: int,
                     loop: bool | None = None) -> DirectionConfig:
    """A direction replaying ``trace`` over the static ``base`` shape.

    Mahimahi traces keep their exact delivery opportunities (they loop, as
    mm-link does); other traces, or a Mahimahi trace asked to stop at its
    end, become the replayer's schedule of shapes, unbinned.  The lab and the
    simulator both build their links with this one rule.
    """
    from shaping.replay import build_schedule  # replay imports tc; only needed here

    if trace.opportunities_ms is not None and loop is not False:
        return DirectionConfig(shape=base, opportunities_ms=trace.opportunities_ms, seed=seed)
    schedule = build_schedule(trace, base, loop=loop)
    return DirectionConfig(
        shape=schedule.changes[0].shape,
        schedule=tuple((c.t_s, c.shape) for c in schedule.changes),
        loop_s=schedule.period_s if schedule.loop else None, seed=seed)
