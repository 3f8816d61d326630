"""The leaf queue under a shaper: a fifo (exact bound) or netem (delay/loss).

Each leaf kind has its own handle, so swapping kinds grafts a new qdisc
beside the old handle instead of asking the kernel to change a qdisc's kind
(which it refuses).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from shaping.spec import QueueLimit
from shaping.tc.netem import NetemOptions
from shaping.tc.wire import make_handle

LEAF_HANDLES = {"pfifo": make_handle(0x10), "bfifo": make_handle(0x11), "netem": make_handle(0x12)}


@dataclass(frozen=True)
class FifoOptions:
    """pfifo (limit in packets) or bfifo (limit in bytes): a droptail queue."""

    kind: Literal["pfifo", "bfifo"]
    limit: int

    def encode(self) -> bytes:
        return struct.pack("=I", self.limit)  # struct tc_fifo_qopt

    def render(self) -> str:
        return f"limit {self.limit}" + ("b" if self.kind == "bfifo" else "")


@dataclass(frozen=True)
class Leaf:
    options: FifoOptions | NetemOptions

    @property
    def kind(self) -> str:
        return self.options.kind

    @property
    def handle(self) -> int:
        return LEAF_HANDLES[self.options.kind]


def fifo_leaf(queue: QueueLimit) -> Leaf:
    if queue.packets is not None:
        return Leaf(FifoOptions("pfifo", queue.packets))
    assert queue.bytes is not None
    return Leaf(FifoOptions("bfifo", queue.bytes))
