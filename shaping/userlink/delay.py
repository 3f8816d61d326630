"""Propagation delay after the bottleneck: fixed delay plus optional jitter.

Jitter is uniform in ``[delay - jitter, delay + jitter]`` (clamped at zero),
which is what netem does when no distribution table is given, so both shaping
backends agree.  Without ``reorder`` a packet never leaves before the one ahead
of it (its due time is raised to its predecessor's), as on a real wire; with
``reorder`` packets leave in due-time order (netem's tfifo behaviour).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

NS_PER_S = 1_000_000_000


class DelayLine(Generic[T]):
    """Holds items until their due time; FIFO unless ``reorder``."""

    __slots__ = ("_fifo", "_heap", "_last_due", "_seq", "reorder", "rng")

    def __init__(self, seed: int, reorder: bool) -> None:
        self.rng = random.Random(f"jitter-{seed}")
        self.reorder = reorder
        self._fifo: deque[tuple[int, T]] = deque()
        self._heap: list[tuple[int, int, T]] = []
        self._seq = 0
        self._last_due = 0

    def __len__(self) -> int:
        return len(self._heap) if self.reorder else len(self._fifo)

    def due_time(self, leave_ns: int, delay_s: float, jitter_s: float) -> int:
        """When an item that left the bottleneck at ``leave_ns`` should be delivered."""
        if jitter_s > 0.0:
            d = delay_s + self.rng.uniform(-jitter_s, jitter_s)
            if d < 0.0:
                d = 0.0
        else:
            d = delay_s
        due = leave_ns + round(d * NS_PER_S)
        if not self.reorder and due < self._last_due:
            due = self._last_due
        self._last_due = due
        return due

    def push(self, due_ns: int, item: T) -> None:
        if self.reorder:
            self._seq += 1
            heapq.heappush(self._heap, (due_ns, self._seq, item))
        else:
            self._fifo.append((due_ns, item))

    def next_due_ns(self) -> int | None:
        if self.reorder:
            return self._heap[0][0] if self._heap else None
        return self._fifo[0][0] if self._fifo else None

    def pop_due(self, now_ns: int) -> list[tuple[int, T]]:
        """Everything due at or before ``now_ns``, in delivery order, with its due time."""
        out: list[tuple[int, T]] = []
        if self.reorder:
            heap = self._heap
            while heap and heap[0][0] <= now_ns:
                due, _, item = heapq.heappop(heap)
                out.append((due, item))
        else:
            fifo = self._fifo
            while fifo and fifo[0][0] <= now_ns:
                out.append(fifo.popleft())
        return out

    def drain(self) -> list[T]:
        items = [item for _, _, item in self._heap] + [item for _, item in self._fifo]
        self._heap.clear()
        self._fifo.clear()
        return items
