"""Opt-in busy-polling (``--poll-budget``): spin on the epoll set in a window
around a flow's expected request instead of sleeping through it.

A sleeping vCPU halts on a VM without guest halt-polling and waking it costs
tens to hundreds of µs; a polling one sees the request at once. The poller runs
at the serving thread's SCHED_FIFO priority, and the kernel throttles a CPU's
real-time tasks together once they use 95 % of it, so polling is off unless
asked for and capped: a token bucket refilled at ``share`` of one core, and
while fewer than ``MIN_HIT_RATE`` of the recent polls found their request (a
busy machine) only every ``PROBE_EVERY``-th window is polled. The agent builds
no poller when the budget is 0, so none of this runs on its path then.
"""

from __future__ import annotations

import select
import time
from typing import Any

DEFAULT_POLL_BUDGET = 0.0
#: On a 2-vCPU host the flows and the link emulator need the rest.
MAX_POLL_BUDGET = 0.5
#: Polling goes on while at least this share of recent polls (moving average, gain
#: HIT_RATE_GAIN) found its request; below it only every PROBE_EVERY-th window is polled.
MIN_HIT_RATE = 0.6
HIT_RATE_GAIN = 0.05
PROBE_EVERY = 8


class SpinBudget:
    """A token bucket of CPU time for busy-polling: ``share`` of one core on average,
    with bursts of at most ``share`` × 1 s. Spinning stops when it runs dry."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.capacity_ns = int(share * 1e9)
        self.tokens_ns = self.capacity_ns
        self.stamp_ns = 0
        self.spent_ns = 0
        self.refused = 0

    def available(self, now_ns: int) -> bool:
        if self.share <= 0:
            return False
        if self.stamp_ns:
            self.tokens_ns = min(self.capacity_ns,
                                 self.tokens_ns + int((now_ns - self.stamp_ns) * self.share))
        self.stamp_ns = now_ns
        if self.tokens_ns <= 0:
            self.refused += 1
            return False
        return True

    def spend(self, ns: int) -> None:
        self.tokens_ns -= ns
        self.spent_ns += ns


class Poller:
    """Decides whether a window is polled, and polls it."""

    def __init__(self, share: float, counters: dict[str, int]) -> None:
        if not 0 < share <= MAX_POLL_BUDGET:
            raise ValueError(f"the polling budget is a share of one core in (0, "
                             f"{MAX_POLL_BUDGET}], got {share}")
        self.budget = SpinBudget(share)
        self.counters = counters
        self.hit_rate = 1.0  # share of recent polls that found a request (moving average)
        self._probe = 0

    def wanted(self, now_ns: int) -> bool:
        """Poll this window? Not while most polls miss (on a busy machine the flows'
        requests come late and polls run to the end of their windows, and, as
        SCHED_FIFO, keep a flow that shares the CPU from running), nor without budget."""
        if self.hit_rate < MIN_HIT_RATE:
            self._probe += 1
            if self._probe % PROBE_EVERY:
                self.counters["spins_skipped"] += 1
                return False
        return self.budget.available(now_ns)

    def spin(self, epoll: select.epoll, until_ns: int, stopped: Any
             ) -> tuple[list[tuple[int, int]], bool]:
        """Poll until an event or ``until_ns``: (events, read while polling). The second
        is true when the request came during the poll (its read time is exact)."""
        self.counters["spins"] += 1
        start = now = time.monotonic_ns()
        polls = 0
        poll = epoll.poll
        clock = time.monotonic_ns
        while True:
            events = poll(0)
            now = clock()
            polls += 1
            if events or now >= until_ns or stopped():
                break
        self.budget.spend(now - start)
        self.hit_rate += HIT_RATE_GAIN * ((1.0 if events else 0.0) - self.hit_rate)
        if events:
            self.counters["spin_hits"] += 1
        return events, polls > 1

    def snapshot(self) -> dict[str, Any]:
        return {"budget_share": self.budget.share,
                "spin_s": round(self.budget.spent_ns / 1e9, 6),
                "refused": self.budget.refused, "hit_rate": round(self.hit_rate, 3)}
