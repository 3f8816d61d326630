"""One direction of the user-space link as a pure discrete-event pipeline.

input → loss (IID or Gilbert-Elliott) → bounded queue (droptail/drophead) →
rate server (token model or Mahimahi opportunities) → delay line (fixed delay,
jitter, optional reordering) → output.

Nothing here reads a clock or touches a socket: the caller passes ``now_ns``,
so tests drive it on a virtual clock and the link process drives it on
CLOCK_MONOTONIC.  Events are processed in time order up to ``now`` (like
Mahimahi's ``rationalize``), so when the real process wakes late, packets are
delivered late but the link's accounting (capacity, schedule changes) stays
exact.
"""

from __future__ import annotations

from collections.abc import Callable

from shaping.spec import LinkShape

from .config import DEFAULT_QUEUE, DirectionConfig
from .delay import DelayLine
from .loss import REASON_LOSS_GILBERT, REASON_LOSS_IID, LossModel
from .queue import BoundedQueue, Packet
from .rate import (
    ETHERNET_OVERHEAD_BYTES,
    MAHIMAHI_OVERHEAD_BYTES,
    NS_PER_S,
    OpportunityServer,
    TokenServer,
)

REASON_DELIVERED = 0
REASON_QUEUE_TAIL = 3
REASON_QUEUE_HEAD = 4
REASON_WRITE_ERROR = 5
REASON_SHUTDOWN = 6
REASON_NAMES = {
    REASON_DELIVERED: "delivered",
    REASON_LOSS_IID: "loss_iid",
    REASON_LOSS_GILBERT: "loss_gilbert",
    REASON_QUEUE_TAIL: "queue_droptail",
    REASON_QUEUE_HEAD: "queue_drophead",
    REASON_WRITE_ERROR: "write_error",
    REASON_SHUTDOWN: "shutdown",
}

# One largest Ethernet frame: the token bucket lets no more than one packet
# through at line speed, like a wire.
DEFAULT_BURST_BYTES = 1500 + ETHERNET_OVERHEAD_BYTES

# on_drop(arrival_ns, ip_size, reason, now_ns)
DropSink = Callable[[int, int, int, int], None]
# on_change(scheduled_ns, applied_ns, shape)
ChangeSink = Callable[[int, int, LinkShape], None]


def _ignore_change(scheduled_ns: int, applied_ns: int, shape: LinkShape) -> None:
    return None


class DirectionEngine:
    """Loss, queue, rate and delay for one direction, advanced by the caller's clock."""

    def __init__(
        self,
        cfg: DirectionConfig,
        start_ns: int,
        on_drop: DropSink,
        on_change: ChangeSink = _ignore_change,
    ) -> None:
        self.cfg = cfg
        self.start_ns = start_ns
        self.on_drop = on_drop
        self.on_change = on_change
        self.shape = cfg.shape
        self.loss = LossModel(cfg.seed, cfg.gilbert)
        self.queue: BoundedQueue[Packet] = BoundedQueue(
            cfg.shape.queue or DEFAULT_QUEUE, cfg.queue_policy
        )
        self.queue_drop_reason = (
            REASON_QUEUE_TAIL if cfg.queue_policy == "droptail" else REASON_QUEUE_HEAD
        )
        self.delay: DelayLine[Packet] = DelayLine(cfg.seed, cfg.reorder)
        self.opportunities: OpportunityServer | None = None
        self.tokens: TokenServer | None = None
        if cfg.opportunities_ms is not None:
            self.opportunities = OpportunityServer(cfg.opportunities_ms, start_ns)
            self.overhead = MAHIMAHI_OVERHEAD_BYTES
        else:
            burst = cfg.burst_bytes or DEFAULT_BURST_BYTES
            self.tokens = TokenServer(cfg.shape.rate_bps, burst, start_ns)
            self.overhead = ETHERNET_OVERHEAD_BYTES
        self.schedule = sorted(cfg.schedule, key=lambda entry: entry[0])
        self.loop_ns = None if cfg.loop_s is None else round(cfg.loop_s * NS_PER_S)
        self.schedule_index = 0
        self.schedule_base_ns = start_ns
        self.restart_ns: int | None = None  # a pending restart of the traces (the run's zero)
        self.on_change(start_ns, start_ns, cfg.shape)
        self.advance(start_ns)

    def restart(self, restart_ns: int, now_ns: int) -> None:
        """Count this direction's trace from ``restart_ns`` again: the run's time zero.

        Until that instant the link goes on as it was; then its schedule and its
        delivery opportunities start over from their beginning, keeping the queue
        and the packet in transit.  A lab restarts every link at the one instant
        its flows start from, so no trace runs ahead of another or of the flows.
        An instant already past takes effect at once (its events run in order).
        """
        self.restart_ns = restart_ns
        self.advance(now_ns)

    def _restart(self, t_ns: int) -> None:
        self.restart_ns = None
        self.start_ns = self.schedule_base_ns = t_ns
        self.schedule_index = 0
        if self.opportunities is not None:
            self.opportunities.restart(t_ns)

    # --- shape changes ----------------------------------------------------

    def _apply(self, t_ns: int, shape: LinkShape) -> None:
        if self.tokens is not None:
            self.tokens.set_rate(shape.rate_bps, t_ns)
        self.queue.set_limit(shape.queue or DEFAULT_QUEUE)
        self.shape = shape

    def change(self, now_ns: int, shape: LinkShape, scheduled_ns: int | None = None) -> None:
        """A live change (from the control channel), effective at ``now_ns``; no flush."""
        self.advance(now_ns)
        self._apply(now_ns, shape)
        self.on_change(now_ns if scheduled_ns is None else scheduled_ns, now_ns, shape)

    def _next_schedule_ns(self) -> int | None:
        if self.schedule_index >= len(self.schedule):
            return None
        t_s = self.schedule[self.schedule_index][0]
        return self.schedule_base_ns + round(t_s * NS_PER_S)

    def _run_schedule_entry(self, t_ns: int, now_ns: int) -> None:
        shape = self.schedule[self.schedule_index][1]
        self._apply(t_ns, shape)
        self.on_change(t_ns, now_ns, shape)
        self.schedule_index += 1
        if self.schedule_index == len(self.schedule) and self.loop_ns is not None:
            self.schedule_index = 0
            self.schedule_base_ns += self.loop_ns

    # --- the pipeline -------------------------------------------------------

    def _server_next_ns(self) -> int | None:
        if self.tokens is not None:
            return self.tokens.next_event_ns(self.queue)
        assert self.opportunities is not None
        return self.opportunities.next_event_ns(self.queue)

    def advance(self, now_ns: int) -> None:
        """Run every link event (departures, opportunities, schedule) up to ``now_ns``."""
        queue = self.queue
        delay = self.delay
        while True:
            t_srv = self._server_next_ns()
            t_sch = self._next_schedule_ns()
            t_rst = self.restart_ns
            if (t_rst is not None and t_rst <= now_ns and (t_srv is None or t_rst <= t_srv)
                    and (t_sch is None or t_rst <= t_sch)):
                self._restart(t_rst)
                continue
            if t_sch is not None and t_sch <= now_ns and (t_srv is None or t_sch <= t_srv):
                self._run_schedule_entry(t_sch, now_ns)
                continue
            if t_srv is None or t_srv > now_ns:
                break
            server = self.tokens if self.tokens is not None else self.opportunities
            assert server is not None
            shape = self.shape
            for pkt in server.serve(t_srv, queue):
                delay.push(delay.due_time(t_srv, shape.delay_s, shape.jitter_s), pkt)
        if self.opportunities is not None and not queue:
            self.opportunities.skip_idle(now_ns)

    def arrive(self, now_ns: int, payload: bytes) -> None:
        """A packet read from the input interface at ``now_ns``."""
        self.advance(now_ns)
        size = len(payload)
        reason = self.loss.decide(self.shape.loss)
        if reason:
            self.on_drop(now_ns, size, reason, now_ns)
            return
        dropped = self.queue.offer(size + self.overhead, (now_ns, size, payload))
        for arrival_ns, ip_size, _ in dropped:
            self.on_drop(arrival_ns, ip_size, self.queue_drop_reason, now_ns)
        self.advance(now_ns)

    def next_event_ns(self) -> int | None:
        """The earliest time this direction has something to do (None: only on input)."""
        best = self.delay.next_due_ns()
        for t in (self._server_next_ns(), self._next_schedule_ns(), self.restart_ns):

            if t is not None and (best is None or t < best):
                best = t
        return best

    def pop_due(self, now_ns: int) -> list[tuple[int, Packet]]:
        """Packets to write out now, each with the time it was due."""
        return self.delay.pop_due(now_ns)

    def backlog(self) -> int:
        """Packets held anywhere in this direction (queue, in transit, in flight)."""
        transit = 0
        if self.opportunities is not None and self.opportunities.transit is not None:
            transit = 1
        return len(self.queue) + transit + len(self.delay)

    def shutdown(self, now_ns: int) -> None:
        """Record every packet still held as dropped at shutdown."""
        held = self.queue.drain() + self.delay.drain()
        if self.opportunities is not None:
            held += self.opportunities.drain_transit()
        for arrival_ns, ip_size, _ in held:
            self.on_drop(arrival_ns, ip_size, REASON_SHUTDOWN, now_ns)
