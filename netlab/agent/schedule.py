"""When the serving loop wakes: sleep until a request, or until just before a
flow's next request is due, to rehearse it on a cold model (``--warm predict``)
or to poll for it (``--poll-budget``, :mod:`netlab.agent.polling`).

Wake-ups, not the model, set the round trip at realistic rates: a sleeping
vCPU halts (no guest halt-polling on a VM) and waking it costs tens to
hundreds of µs, after which the serving path runs slower until its caches
refill. Flows decide periodically, so the agent learns when each flow's next
request will come (:class:`netlab.agent.arrivals.ArrivalPredictor`) and, when
the model will have idled past ``--warm-interval`` by then, rehearses that
flow's last request just before it (decode, forward pass with its state,
encode; nothing sent or kept). Timed sleeps use ``select`` on the epoll fd, so
their timeouts are µs-exact (``epoll_wait`` rounds up to whole ms), and wake
the agent's own measured lateness early. ``--warm periodic`` runs the model
whenever it has idled ``--warm-interval`` instead; ``--warm off`` with no
polling budget builds no schedule at all: the loop just sleeps in epoll.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from endpoints import agent_protocol as proto
from netlab.agent.polling import Poller
from netlab.agent.requests import FlowState
from netlab.agent.stats import LatencyStats

if TYPE_CHECKING:
    from netlab.agent.lane import FastLane
    from netlab.agent.policies.base import Policy

IDLE_WAKE_S = 0.2
DEFAULT_WARM_INTERVAL_S = 0.002
WARM_MODES = ("predict", "periodic", "off")
MAX_REHEARSALS = 4
#: An idle this long empties the caches far enough that one rehearsal is not enough.
LONG_IDLE_NS = 20_000_000
#: How late a timed sleep of this process wakes before it has measured it itself
#: (docs/design.md, "Facts": a deadline loop wakes 120–170 µs late at p50), and the
#: bounds of what it learns (the 90th percentile of its recent timed wake-ups).
INITIAL_WAKE_LEAD_NS = 150_000
WAKE_LEAD_BOUNDS_NS = (20_000, 600_000)

Events = list[tuple[int, int]]


def _p90_of_newest(samples: list[int], sample: int, keep: int = 32) -> int:
    """Add ``sample`` to the newest ``keep`` ``samples``; their 90th percentile."""
    samples.append(sample)
    if len(samples) > keep:
        del samples[0]
    return sorted(samples)[len(samples) * 9 // 10]


def sleep(epoll: select.epoll, timeout_s: float, exact: bool) -> Events:
    """Wait for events at most ``timeout_s``; ``exact``: µs resolution (select on the
    epoll fd, one more system call) rather than epoll_wait's whole milliseconds."""
    fd = epoll.fileno()
    if exact and fd < 1024:  # select() only takes fds below FD_SETSIZE
        ready, _, _ = select.select([fd], [], [], timeout_s)
        return epoll.poll(0) if ready else []
    return epoll.poll(timeout_s)


class WakeSchedule:
    """Plans each wait of the serving loop from every flow's next expected request."""

    def __init__(self, counters: dict[str, int], *, warm: str, warm_interval_s: float,
                 poller: Poller | None, lane: FastLane | None = None) -> None:
        if warm not in WARM_MODES:
            raise ValueError(f"warm: one of {WARM_MODES}, got {warm!r}")
        self.counters = counters
        self.warm_mode = warm if warm_interval_s > 0 else "off"
        self.warm_interval_ns = int(warm_interval_s * 1e9)
        self.poller = poller
        self.last_forward_ns = 0
        self._warm_cost_ns = 0
        self._warm_costs: list[int] = []
        self._wake_lateness: list[int] = []
        self._wake_lead_ns = INITIAL_WAKE_LEAD_NS
        self._scratch = LatencyStats()  # what a rehearsal records into (never reported)
        #: the agent's fast lane: a rehearsal runs what serves the request
        self.lane = lane

    @property
    def tracks_arrivals(self) -> bool:
        return self.poller is not None or self.warm_mode == "predict"

    def wait(self, epoll: select.epoll, policy: Policy, flows: Iterable[FlowState],
             stopped: Callable[[], bool]) -> tuple[Events, bool]:
        """(events, found while polling): sleeps, polls, or rehearses and returns none."""
        now = time.monotonic_ns()
        spin_until, wake_at, warm = self._plan(now, flows)
        if warm is not None:
            self._rehearse(warm, policy, epoll)
            return [], False
        if spin_until > now:
            assert self.poller is not None
            if self.poller.wanted(now):
                return self.poller.spin(epoll, spin_until, stopped)
            wake_at = spin_until  # not polling this window: sleep through it
        if wake_at is None or (wake_at - now) / 1e9 >= IDLE_WAKE_S:
            return sleep(epoll, IDLE_WAKE_S, exact=False), False
        events = sleep(epoll, max(0.0, (wake_at - now) / 1e9), exact=True)
        if not events:
            self._learn_lateness(time.monotonic_ns() - wake_at)
        return events, False

    def _plan(self, now: int, flows: Iterable[FlowState]
              ) -> tuple[int, int | None, FlowState | None]:
        """(poll until, sleep until, warm now) from every flow's next expected request.

        A window opens the agent's own wake-up lateness earlier (so that it is
        awake in time) and, when the model will have idled past ``--warm-interval``,
        the warm-up's cost earlier again (so that it is hot in time)."""
        spin_until = 0
        wake_at: int | None = None
        warm: FlowState | None = None
        last = self.last_forward_ns
        interval = self.warm_interval_ns
        idle = now - last > interval
        predict = self.warm_mode == "predict"
        polling = self.poller is not None
        if predict or polling:
            for flow in flows:
                arrivals = flow.arrivals
                window = arrivals.window(now) if arrivals is not None else None
                if window is None:
                    continue
                opens, closes = window
                cold = predict and opens - last > interval
                wake = opens - self._wake_lead_ns - (self._warm_cost_ns if cold else 0)
                if wake <= now:
                    if cold and idle:
                        warm = flow
                    if polling:
                        spin_until = max(spin_until, closes)
                elif wake_at is None or wake < wake_at:
                    wake_at = wake
        if self.warm_mode == "periodic":
            due = last + interval
            if now >= due:
                warm = FlowState(0)
            wake_at = due if wake_at is None else min(wake_at, due)
        return spin_until, wake_at, warm

    def _rehearse(self, flow: FlowState, policy: Policy, epoll: select.epoll) -> None:
        """Rehearse serving ``flow``'s last request (decode, forward pass with its
        state, encode, record) without sending or keeping anything: after an idle
        vCPU wakes, that path runs 3–4× slower until its caches are refilled, and
        spinning alone does not refill them.

        A large model needs more than one pass: after an idle of ``LONG_IDLE_NS`` or
        more, passes repeat until one is no more than 15 % faster than the one
        before, at most ``MAX_REHEARSALS``; otherwise one pass."""
        start = time.monotonic_ns()
        previous = 0
        passes = MAX_REHEARSALS if start - self.last_forward_ns > LONG_IDLE_NS else 1
        for _ in range(passes):
            began = time.monotonic_ns()
            if not flow.last_frame:
                policy.warm()
            elif self.lane is None or not self.lane.rehearse(flow.last_frame):
                frame = proto.decode(flow.last_frame)
                out = policy.act(frame.vector.reshape(1, -1), [flow.state], False,
                                 np.array([frame.value], dtype=np.float32))
                proto.encode(proto.Kind.ACTION, frame.flow, frame.seq, frame.t_ns,
                             out.actions[0], value=float(out.value[0]))
                self._scratch.add((time.monotonic_ns() - frame.t_ns) / 1e3)
            took = time.monotonic_ns() - began
            if previous and took * 20 > previous * 17:  # within 15 %: as hot as it gets
                break
            previous = took
            if epoll.poll(0):
                break  # a request (or a connection) is waiting: serve it first
        end = time.monotonic_ns()
        self._warm_cost_ns = _p90_of_newest(self._warm_costs, end - start)
        self.last_forward_ns = end
        self.counters["warmups"] += 1

    def _learn_lateness(self, late_ns: int) -> None:
        self.counters["timed_wakes"] += 1
        low, high = WAKE_LEAD_BOUNDS_NS
        self._wake_lead_ns = min(high, max(low, _p90_of_newest(self._wake_lateness,
                                                               max(0, late_ns))))

    def snapshot(self) -> dict[str, Any]:
        return {"wake_lead_us": round(self._wake_lead_ns / 1e3, 1), "warm": self.warm_mode,
                "warm_cost_us": round(self._warm_cost_ns / 1e3, 1)}
