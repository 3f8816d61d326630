"""Group packets into send bursts and compute inter-group deltas.

After libwebrtc's InterArrivalDelta (goog_cc/inter_arrival_delta.cc) and
draft-ietf-rmcat-gcc-02 §5.2: packets sent within 5 ms of a group's first
packet form one group; a packet that arrives within 5 ms of the previous one
while its propagation delta is negative belongs to the same burst (it was
queued behind it), up to 100 ms of burst. For each completed group pair the
send-time and arrival-time deltas go to the trendline filter.
"""

from __future__ import annotations

from dataclasses import dataclass

SEND_TIME_GROUP_LENGTH_US = 5_000
BURST_DELTA_THRESHOLD_US = 5_000
MAX_BURST_DURATION_US = 100_000
REORDERED_RESET_THRESHOLD = 3


@dataclass
class _Group:
    first_send_us: int
    send_us: int  # last (largest) send time in the group
    first_arrival_us: int
    complete_us: int  # arrival of the group's last packet
    size: int


@dataclass(frozen=True)
class Deltas:
    send_delta_ms: float
    arrival_delta_ms: float
    size_delta: int


class InterArrival:
    def __init__(self, group_length_us: int = SEND_TIME_GROUP_LENGTH_US) -> None:
        self.group_length_us = group_length_us
        self._current: _Group | None = None
        self._previous: _Group | None = None
        self._reordered = 0

    def reset(self) -> None:
        self._current = None
        self._previous = None
        self._reordered = 0

    def compute_deltas(self, send_us: int, arrival_us: int, size: int) -> Deltas | None:
        """Feed one received packet (in arrival order); deltas when a group completes."""
        current = self._current
        if current is None:
            self._current = _Group(send_us, send_us, arrival_us, arrival_us, size)
            return None
        if send_us < current.first_send_us:
            return None  # reordered: sent before the group we are building
        result: Deltas | None = None
        if self._starts_new_group(current, send_us, arrival_us):
            previous = self._previous
            if previous is not None:
                send_delta = current.send_us - previous.send_us
                arrival_delta = current.complete_us - previous.complete_us
                if arrival_delta < 0:
                    # Reordered after their arrival stamps: drop the packet, and
                    # start over if it keeps happening (as libwebrtc does).
                    self._reordered += 1
                    if self._reordered >= REORDERED_RESET_THRESHOLD:
                        self.reset()
                    return None
                self._reordered = 0
                result = Deltas(send_delta / 1000, arrival_delta / 1000,
                                current.size - previous.size)
            self._previous = current
            self._current = _Group(send_us, send_us, arrival_us, arrival_us, 0)
            current = self._current
        else:
            current.send_us = max(current.send_us, send_us)
        current.size += size
        current.complete_us = arrival_us
        return result

    def _starts_new_group(self, current: _Group, send_us: int, arrival_us: int) -> bool:
        if self._belongs_to_burst(current, send_us, arrival_us):
            return False
        return send_us - current.first_send_us > self.group_length_us

    @staticmethod
    def _belongs_to_burst(current: _Group, send_us: int, arrival_us: int) -> bool:
        arrival_delta = arrival_us - current.complete_us
        send_delta = send_us - current.send_us
        if send_delta == 0:
            return True
        propagation_delta = arrival_delta - send_delta
        return (propagation_delta < 0 and arrival_delta <= BURST_DELTA_THRESHOLD_US
                and arrival_us - current.first_arrival_us < MAX_BURST_DURATION_US)
