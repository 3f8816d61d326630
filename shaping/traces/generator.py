"""Synthetic traces: Genet's random bandwidth process, and explicit steps.

The random generator follows Genet's ``generate_bw_delay_series`` (GenetProject
/Genet ``src/simulator/trace.py``): a bandwidth drawn uniformly from
``[min, max]`` is held for ``T_s`` seconds, then a new one is drawn, until
``duration``; the one-way delay is fixed for the trace; loss is one random
loss rate; the queue is a packet count; ``delay_noise`` is the most uniform
noise a packet's delay gets (Genet adds ``uniform(0, delay_noise)``). Genet
samples each of these from a range per trace (``generate_trace``); here the
caller fixes them, so a sweep over ranges is a loop over seeds and values.
Genet changes bandwidth on a 0.1 s grid (its ``dt``); we change exactly every
``T_s`` seconds. ``T_s = 0`` gives a constant trace, as in Genet.

Determinism: one ``random.Random(seed)`` draws every value, in order, so the
same parameters and seed give the same trace on every machine and Python.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from shaping.traces.errors import TraceError
from shaping.traces.model import Trace


@dataclass(frozen=True)
class GenetParams:
    """Genet's trace knobs, in SI units (bits/s, seconds, fractions)."""

    min_bw_bps: float
    max_bw_bps: float
    duration_s: float
    change_interval_s: float = 1.0  # Genet's T_s
    delay_s: float = 0.0  # one-way propagation delay
    queue_packets: int | None = None
    loss: float = 0.0
    delay_noise_s: float = 0.0
    seed: int = 0
    loop: bool = False  # Genet holds the last value after the end

    def check(self) -> None:
        def bad(what: str, fix: str) -> TraceError:
            return TraceError(what, fix=fix)

        values = (
            self.min_bw_bps,
            self.max_bw_bps,
            self.duration_s,
            self.change_interval_s,
            self.delay_s,
            self.loss,
            self.delay_noise_s,
        )
        if not all(math.isfinite(v) for v in values):
            raise bad("generator parameters must be finite numbers", "check the values given")
        if self.min_bw_bps < 0 or self.max_bw_bps < self.min_bw_bps:
            raise bad(
                f"bandwidth range {self.min_bw_bps:g}..{self.max_bw_bps:g} bit/s "
                "is empty or negative",
                "give 0 <= min bandwidth <= max bandwidth",
            )
        if self.max_bw_bps == 0:
            raise bad(
                "max bandwidth is 0: the link would carry nothing", "give a max bandwidth > 0"
            )
        if self.duration_s <= 0:
            raise bad("duration must be > 0 (zero length)", "give a duration such as 30s")
        if self.change_interval_s < 0:
            raise bad("change interval (T_s) must be >= 0", "use 0 for a constant trace")
        if self.delay_s < 0 or self.delay_noise_s < 0:
            raise bad("delay and delay noise must be >= 0", "give non-negative delays")
        if not 0 <= self.loss <= 1:
            raise bad(f"loss {self.loss:g} is outside [0, 1]", "give loss as a fraction or a %")
        if self.queue_packets is not None and self.queue_packets < 1:
            raise bad("queue must hold at least 1 packet", "give a queue such as 100pkt")


def generate(params: GenetParams, *, name: str = "") -> Trace:
    """A Genet-style random trace; same parameters and seed, same trace."""
    params.check()
    rng = random.Random(params.seed)
    times: list[float] = []
    rates: list[float] = []
    interval = params.change_interval_s
    steps = 1 if interval == 0 else math.ceil(params.duration_s / interval - 1e-9)
    for step in range(max(1, steps)):
        times.append(round(step * interval, 9))
        rates.append(rng.uniform(params.min_bw_bps, params.max_bw_bps))
    count = len(times)
    return Trace(
        times_s=tuple(times),
        rates_bps=tuple(rates),
        period_s=params.duration_s,
        loop=params.loop,
        delays_s=(params.delay_s,) * count,
        losses=(params.loss,) * count,
        queue_packets=params.queue_packets,
        delay_noise_s=params.delay_noise_s or None,
        name=name,
        source_format="generated",
    )


def steps(
    levels: Sequence[tuple[float, float]],
    *,
    delay_s: float | None = None,
    loss: float | None = None,
    loop: bool = True,
    name: str = "",
) -> Trace:
    """A trace of explicit ``(rate_bps, duration_s)`` steps; rate 0 is an outage."""
    if not levels:
        raise TraceError("a step trace needs at least one step", fix="give rate:duration pairs")
    times: list[float] = []
    rates: list[float] = []
    now = 0.0
    for rate, duration in levels:
        if not (math.isfinite(rate) and rate >= 0):
            raise TraceError(f"step rate {rate!r} must be >= 0", fix="give rates like 5Mbit or 0")
        if not (math.isfinite(duration) and duration > 0):
            raise TraceError(
                f"step duration {duration!r} must be > 0 (zero length)",
                fix="give durations like 10s",
            )
        times.append(round(now, 9))
        rates.append(rate)
        now += duration
    count = len(times)
    return Trace(
        times_s=tuple(times),
        rates_bps=tuple(rates),
        period_s=round(now, 9),
        loop=loop,
        delays_s=None if delay_s is None else (delay_s,) * count,
        losses=None if loss is None else (loss,) * count,
        name=name,
        source_format="generated",
    )
