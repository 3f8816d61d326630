"""The bottleneck queue: droptail or drophead, bounded in packets or bytes.

Semantics follow Mahimahi's dropping queues (src/packet/drop_tail_packet_queue.hh
and drop_head_packet_queue.hh in ravinet/mahimahi): droptail refuses an arrival
that would exceed the bound; drophead always accepts the arrival and then drops
from the head until the queue is within its bound again (which can drop the
arrival itself if it alone exceeds a byte bound).  Sizes are the charged sizes
the rate model uses.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from shaping.spec import QueueLimit

from .config import QueuePolicy

T = TypeVar("T")

# What moves through a link direction: (arrival_ns, ip_size, payload).
Packet = tuple[int, int, bytes]


class BoundedQueue(Generic[T]):
    """FIFO of ``(size, item)`` with a packet or byte bound and a drop policy."""

    __slots__ = ("_items", "byte_limit", "bytes", "packet_limit", "policy")

    def __init__(self, limit: QueueLimit, policy: QueuePolicy = "droptail") -> None:
        self._items: deque[tuple[int, T]] = deque()
        self.bytes = 0
        self.packet_limit = limit.packets
        self.byte_limit = limit.bytes
        self.policy = policy

    def set_limit(self, limit: QueueLimit) -> None:
        """Change the bound in place; nothing is dropped until the next arrival."""
        self.packet_limit = limit.packets
        self.byte_limit = limit.bytes

    def __len__(self) -> int:
        return len(self._items)

    def _fits(self, size_bytes: int, size_packets: int) -> bool:
        if self.byte_limit is not None and size_bytes > self.byte_limit:
            return False
        return not (self.packet_limit is not None and size_packets > self.packet_limit)

    def offer(self, size: int, item: T) -> list[T]:
        """Enqueue ``item``; return what the policy dropped (maybe ``item`` itself)."""
        if self.policy == "droptail":
            if self._fits(self.bytes + size, len(self._items) + 1):
                self._items.append((size, item))
                self.bytes += size
                return []
            return [item]
        self._items.append((size, item))
        self.bytes += size
        dropped: list[T] = []
        while self._items and not self._fits(self.bytes, len(self._items)):
            dropped.append(self.pop())
        return dropped

    def head_size(self) -> int:
        return self._items[0][0]

    def head(self) -> T:
        return self._items[0][1]

    def pop(self) -> T:
        size, item = self._items.popleft()
        self.bytes -= size
        return item

    def drain(self) -> list[T]:
        items = [item for _, item in self._items]
        self._items.clear()
        self.bytes = 0
        return items
