"""Sizing of token-bucket bursts and default queues from the rate.

A fixed burst (Mininet's 15 kB, see mininet/mininet PR #1252) is too small at
high rates: the bucket empties between two timer wake-ups of the qdisc, the
link idles although packets wait, and the delivered rate falls short.  A burst
that is too large at low rates lets a whole window through at line speed.  So
the burst covers a fixed *time* of traffic at the configured rate, with a
floor of a few full frames so the bucket can always pass a packet.
"""

from __future__ import annotations

import math

from shaping.spec import QueueLimit

#: Largest frame tc sees on a 1500-byte-MTU Ethernet/veth link (no FCS).  The
#: configured rate counts these bytes, so TCP goodput tops out at 1448/1514.
FRAME_BYTES = 1514

#: Time of traffic the bucket may hold.  Re-measure with
#: ``bench/shaping_accuracy.py`` before changing it.  2 ms covers the timer
#: and softirq latency of a busy 2-vCPU machine at 1 Gbit/s (see the bench).
BURST_TIME_S = 0.002

#: Floor of the burst, in full frames: tbf drops (or segments) any packet
#: larger than its bucket, and htb needs one frame's worth to send at all.
MIN_BURST_FRAMES = 2

#: Default queue: one bandwidth-delay product at this round-trip time (the
#: rule of thumb buffer = RTT x C, Villamizar & Song 1994), unless twice the
#: link's own one-way delay is longer.
DEFAULT_QUEUE_RTT_S = 0.100

#: Floor of the default queue in full frames: a loss-based sender halving
#: its window (RFC 5681) still keeps a queue this deep busy at low rates.
MIN_QUEUE_FRAMES = 8

#: Ceiling of the default byte queue: keeps a 100 ms buffer at multi-Gbit/s
#: rates from pinning hundreds of megabytes of kernel memory.
MAX_DEFAULT_QUEUE_BYTES = 16 * 1024 * 1024

#: Queue when the link is unshaped: the kernel's default txqueuelen.
UNSHAPED_QUEUE_PACKETS = 1000


def burst_bytes(rate_bps: int) -> int:
    """Bucket size for ``rate_bps`` (bits/s, whole frames)."""
    by_time = math.ceil(rate_bps / 8 * BURST_TIME_S)
    return max(MIN_BURST_FRAMES * FRAME_BYTES, by_time)


def default_queue(rate_bps: int | None, delay_s: float = 0.0, jitter_s: float = 0.0) -> QueueLimit:
    """Queue bound used when a shape names none.

    One bandwidth-delay product at ``max(100 ms, 2 x (delay + jitter))``,
    between 8 full frames and 16 MiB; 1000 packets when unshaped.  The lab
    should pass an explicit queue for trace replay (computed here from the
    trace's peak rate), since a shaper keeps the queue it was applied with.
    """
    if rate_bps is None:
        return QueueLimit(packets=UNSHAPED_QUEUE_PACKETS)
    rtt = max(DEFAULT_QUEUE_RTT_S, 2 * (delay_s + jitter_s))
    bdp = math.ceil(rate_bps / 8 * rtt)
    return QueueLimit(bytes=min(MAX_DEFAULT_QUEUE_BYTES, max(MIN_QUEUE_FRAMES * FRAME_BYTES, bdp)))


def frames_for(queue: QueueLimit) -> int:
    """A queue bound counted in packets (bytes converted at one full frame each)."""
    if queue.packets is not None:
        return queue.packets
    assert queue.bytes is not None
    return max(1, math.ceil(queue.bytes / FRAME_BYTES))
