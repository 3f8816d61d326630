"""netem options: delay, jitter, loss and the packet limit of its delay line.

netem sits beneath the rate shaper (as Mininet's TCLink and tcconfig place
it).  Without a delay distribution table the kernel draws jitter uniformly in
[-jitter, +jitter], and jitter reorders packets (netem's tfifo sorts by
departure time).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from shaping.tc.burst import FRAME_BYTES
from shaping.tc.text import percent_text, time_text
from shaping.tc.wire import U32_MAX, seconds_to_ticks


@dataclass(frozen=True)
class NetemOptions:
    delay_s: float
    jitter_s: float
    loss: float  # probability in [0, 1]
    limit: int  # packets: the delay line plus the queue waiting for tokens
    kind: str = "netem"

    def encode(self) -> bytes:
        # struct tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter
        return struct.pack(
            "=IIIIII",
            seconds_to_ticks(self.delay_s),
            self.limit,
            round(self.loss * U32_MAX),
            0,
            0,
            seconds_to_ticks(self.jitter_s),
        )

    def render(self) -> str:
        text = f"limit {self.limit}"
        if self.delay_s or self.jitter_s:
            text += f" delay {time_text(self.delay_s)}"
            if self.jitter_s:
                text += f" {time_text(self.jitter_s)}"
        if self.loss:
            text += f" loss {percent_text(self.loss)}"
        return text


def netem_limit(queue_packets: int, rate_bps: int, delay_s: float, jitter_s: float) -> int:
    """netem's packet limit: the queue asked for plus the packets in flight.

    As the leaf of the shaper, netem holds both the packets serving their
    delay and those waiting for tokens; counting only the queue would turn
    the delay line into a drop point at rates where rate x delay is large.
    """
    in_flight = math.ceil(rate_bps / 8 * (delay_s + jitter_s) / FRAME_BYTES)
    return min(U32_MAX, queue_packets + in_flight)
