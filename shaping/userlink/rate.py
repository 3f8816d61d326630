"""The link's service models: a byte token model, and Mahimahi's delivery opportunities.

Both are discrete-event servers over a :class:`BoundedQueue`: ``next_event_ns``
says when the head of the queue (or the next opportunity) is due, ``serve``
performs that event at exactly that time and returns the packets that finished
crossing the bottleneck.  The engine calls them in time order, so a late
wake-up of the real process delays delivery but never changes how much the
link carried.

Token model: credit accrues at ``rate_bps`` and is capped at ``burst`` bytes
(default one largest packet), a packet leaves when the credit covers its
charged size (whole Ethernet frame, as tc counts).  Credit is kept in integer
bit-nanoseconds so nothing drifts over long runs.

Opportunity model (Netravali et al., "Mahimahi: Accurate Record-and-Replay for
HTTP", USENIX ATC 2015; ravinet/mahimahi src/frontend/link_queue.cc,
``LinkQueue::rationalize``): each trace line is an opportunity to deliver
``PACKET_SIZE`` = 1504 bytes at that millisecond; the trace loops with a period
equal to its last timestamp.  At an opportunity the head packet is moved "in
transit" (out of the queue, so it no longer counts against the queue bound)
and bytes of the opportunity are spent on it; a packet larger than what is left
of the opportunity keeps its remaining bytes in transit and finishes at a later
opportunity (its departure time is the opportunity that sends its last byte);
bytes of an opportunity that find no packet are wasted.  An opportunity at
exactly the arrival time of a packet is used up before the packet is enqueued
(mahimahi calls ``rationalize(now)`` before enqueueing).  Mahimahi reads from
a TUN device with the 4-byte packet-info header, so a 1500-byte IP packet
costs 1504 bytes: one full opportunity; we charge the same.
"""

from __future__ import annotations

from bisect import bisect_right

from .queue import BoundedQueue, Packet

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
CREDIT_PER_BYTE = 8 * NS_PER_S  # credit unit: bit-nanoseconds per (bit/s)
MAHIMAHI_OPPORTUNITY_BYTES = 1504
MAHIMAHI_OVERHEAD_BYTES = 4  # struct tun_pi in front of each packet mahimahi reads
ETHERNET_OVERHEAD_BYTES = 14  # tc counts whole frames: IP packet + Ethernet header


class TokenServer:
    """Byte token model; ``rate_bps`` None = unshaped, 0 = outage (nothing leaves)."""

    __slots__ = ("burst_bytes", "credit", "rate_bps", "t_ref")

    def __init__(self, rate_bps: int | None, burst_bytes: int, now_ns: int) -> None:
        self.rate_bps = rate_bps
        self.burst_bytes = burst_bytes
        self.credit = burst_bytes * CREDIT_PER_BYTE  # start with a full bucket
        self.t_ref = now_ns

    def _credit_at(self, t_ns: int, cap: int) -> int:
        rate = self.rate_bps
        if rate is None:
            return cap
        return min(cap, self.credit + (t_ns - self.t_ref) * rate)

    def set_rate(self, rate_bps: int | None, now_ns: int) -> None:
        """Switch rate at ``now_ns`` keeping the credit earned so far (no refill)."""
        cap = self.burst_bytes * CREDIT_PER_BYTE
        if now_ns > self.t_ref:
            self.credit = self._credit_at(now_ns, max(cap, self.credit))
        self.t_ref = max(self.t_ref, now_ns)
        if self.rate_bps is None:
            self.credit = cap  # leaving unshaped: an idle wire, full bucket
        self.rate_bps = rate_bps

    def next_event_ns(self, queue: BoundedQueue[Packet]) -> int | None:
        if not queue:
            return None
        t0 = max(queue.head()[0], self.t_ref)
        rate = self.rate_bps
        if rate is None:
            return t0
        if rate <= 0:
            return None
        size = queue.head_size()
        cap = max(self.burst_bytes, size) * CREDIT_PER_BYTE
        need = size * CREDIT_PER_BYTE - self._credit_at(t0, cap)
        if need <= 0:
            return t0
        return t0 + -(-need // rate)

    def serve(self, t_ns: int, queue: BoundedQueue[Packet]) -> list[Packet]:
        size = queue.head_size()
        if self.rate_bps is not None:
            cap = max(self.burst_bytes, size) * CREDIT_PER_BYTE
            self.credit = self._credit_at(t_ns, cap) - size * CREDIT_PER_BYTE
        self.t_ref = max(self.t_ref, t_ns)
        return [queue.pop()]


class OpportunityServer:
    """Mahimahi's delivery opportunities, exactly as mm-link's LinkQueue spends them."""

    __slots__ = ("base_ns", "index", "opps", "period_ms", "transit", "transit_left")

    def __init__(self, opportunities_ms: tuple[int, ...], start_ns: int) -> None:
        self.opps = opportunities_ms
        self.period_ms = opportunities_ms[-1]
        self.base_ns = start_ns
        self.index = 0
        self.transit: Packet | None = None
        self.transit_left = 0

    def restart(self, t_ns: int) -> None:
        """The trace starts over at ``t_ns`` (its first line is due then + its offset)."""
        self.base_ns = t_ns
        self.index = 0

    def _next_opportunity_ns(self) -> int:

        return self.base_ns + self.opps[self.index] * NS_PER_MS

    def _use_opportunity(self) -> None:
        self.index += 1
        if self.index == len(self.opps):
            self.index = 0
            self.base_ns += self.period_ms * NS_PER_MS

    def skip_idle(self, now_ns: int) -> None:
        """Burn every opportunity up to ``now_ns`` while nothing waits (O(log n))."""
        if self.transit is not None:
            return
        period_ns = self.period_ms * NS_PER_MS
        if now_ns - self.base_ns >= period_ns:
            self.base_ns += (now_ns - self.base_ns) // period_ns * period_ns
            self.index = 0
        if now_ns >= self.base_ns:
            rel_ms = (now_ns - self.base_ns) // NS_PER_MS
            # rel_ms < period == opps[-1], so the index stays inside this cycle
            self.index = max(self.index, bisect_right(self.opps, rel_ms))

    def next_event_ns(self, queue: BoundedQueue[Packet]) -> int | None:
        if self.transit is None and not queue:
            return None
        return self._next_opportunity_ns()

    def serve(self, t_ns: int, queue: BoundedQueue[Packet]) -> list[Packet]:
        """Spend the opportunity at ``t_ns``; return the packets whose last byte it sent."""
        budget = MAHIMAHI_OPPORTUNITY_BYTES
        self._use_opportunity()
        out: list[Packet] = []
        while budget > 0:
            if self.transit is None:
                if not queue:
                    break  # the rest of this opportunity is wasted
                self.transit_left = queue.head_size()
                self.transit = queue.pop()
            amount = min(budget, self.transit_left)
            self.transit_left -= amount
            budget -= amount
            if self.transit_left == 0:
                out.append(self.transit)
                self.transit = None
        return out

    def drain_transit(self) -> list[Packet]:
        if self.transit is None:
            return []
        item, self.transit = self.transit, None
        self.transit_left = 0
        return [item]
