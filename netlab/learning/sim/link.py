"""The simulator's bottleneck: the user-space link's own direction pipeline.

:class:`shaping.userlink.DirectionEngine` is pure (loss → droptail queue →
token or Mahimahi-opportunity server → delay line, on a caller's clock), so
the simulator runs the very code the user-space backend runs in a lab. A
trace becomes its :class:`~shaping.userlink.DirectionConfig` by the same
rule a lab uses (``shaping.userlink.config.traced_direction``).
"""

from __future__ import annotations

from collections import deque

from shaping.spec import LinkShape
from shaping.traces import Trace
from shaping.userlink import DirectionConfig, DirectionEngine
from shaping.userlink.config import traced_direction
from shaping.userlink.engine import REASON_NAMES

#: IPv4 (20) + UDP (8) in front of every RTP packet on the wire.
IP_UDP_OVERHEAD = 28


def bottleneck_config(trace: Trace, base: LinkShape, *, seed: int,
                      loop: bool | None = None) -> DirectionConfig:
    """What a lab's user-space link builds for a traced direction."""
    return traced_direction(trace, base, seed=seed, loop=loop)


class Bottleneck:
    """One direction of the user-space link carrying opaque items in FIFO order.

    The engine moves ``(arrival_ns, ip_size, payload)`` tuples; the item each
    packet stands for waits in a FIFO beside it. Without reordering and with
    a droptail queue the engine delivers in arrival order and drops only the
    arriving packet, so the FIFO pairs each delivery with its item exactly.
    """

    def __init__(self, config: DirectionConfig, start_ns: int = 0) -> None:
        """``start_ns``: when the link's trace starts on the caller's clock (before 0:
        the call begins that far into the trace, as a lab's sender does)."""
        if config.reorder or config.queue_policy != "droptail":
            raise ValueError("the simulator's bottleneck needs droptail without reordering")
        self.items: deque[object] = deque()
        self.drops: dict[str, int] = {}
        self._dropped = False
        self.engine = DirectionEngine(config, start_ns, self._on_drop)

    def _on_drop(self, arrival_ns: int, ip_size: int, reason: int, now_ns: int) -> None:
        self._dropped = True
        name = REASON_NAMES.get(reason, str(reason))
        self.drops[name] = self.drops.get(name, 0) + 1

    def send(self, now_ns: int, payload: bytes, item: object) -> bool:
        """Offer one packet (``payload`` only gives its IP size); False if the link dropped it."""
        self._dropped = False
        self.engine.arrive(now_ns, payload)
        if self._dropped:
            return False
        self.items.append(item)
        return True

    def deliver(self, now_ns: int) -> list[tuple[int, object]]:
        """``(arrival_ns, item)`` of every packet delivered up to ``now_ns``, in order."""
        self.engine.advance(now_ns)
        items = self.items
        return [(due, items.popleft()) for due, _ in self.engine.pop_due(now_ns)]

    def next_event_ns(self) -> int | None:
        """When the link next moves a packet or changes its shape (None: it holds none)."""
        return self.engine.next_event_ns()

    def delay_s(self) -> float:
        """The one-way delay in force now (the trace's, else the base shape's)."""
        return self.engine.shape.delay_s
