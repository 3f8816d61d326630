"""Clock offsets between the driving machine and each VM, NTP style.

One-way delay across VMs compares a sender's send time with a receiver's
arrival time, read from two different CLOCK_MONOTONIC clocks (each VM's
starts at its own boot).  Before and after a run the driver exchanges small
UDP datagrams with each VM's node over the management link and keeps, per
RFC 5905 section 8, offset = ((t2 - t1) + (t3 - t4)) / 2 from the exchanges
with the smallest round trip; the true offset lies within ± round trip / 2
of each estimate, which is reported as the residual uncertainty.  Two
estimates (before, after) give a linear model, so drift during the run is
corrected too.

Runs inside the VMs as well (the server half): standard library only.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

REQUEST = struct.Struct("<Qq")  # sequence, t1 (driver's clock)
REPLY = struct.Struct("<Qqqq")  # sequence, t1, t2 (VM receive), t3 (VM send)
BEST_FRACTION = 0.2


@dataclass(frozen=True)
class Exchange:
    t1: int  # request sent (driver clock)
    t2: int  # request received (VM clock)
    t3: int  # reply sent (VM clock)
    t4: int  # reply received (driver clock)

    @property
    def offset_ns(self) -> float:
        """VM clock minus driver clock."""
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) / 2

    @property
    def round_trip_ns(self) -> int:
        return (self.t4 - self.t1) - (self.t3 - self.t2)


@dataclass(frozen=True)
class OffsetEstimate:
    offset_ns: float  # VM clock minus driver clock
    uncertainty_ns: float  # half the chosen exchange's round trip: the offset's error bound
    at_ns: int  # driver clock time of the estimate
    exchanges: int


def estimate(exchanges: list[Exchange]) -> OffsetEstimate:
    """The median offset of the fastest ``BEST_FRACTION`` of exchanges: the
    slow ones carry queueing on one leg only, which biases their offset."""
    if not exchanges:
        raise ValueError("no clock exchange completed")
    ordered = sorted(exchanges, key=lambda e: e.round_trip_ns)
    best = ordered[:max(1, int(len(ordered) * BEST_FRACTION))]
    middle = sorted(best, key=lambda e: e.offset_ns)[len(best) // 2]
    # The bound is the chosen exchange's own half round trip: the fastest
    # exchange's would be tighter than what the median can guarantee.
    return OffsetEstimate(middle.offset_ns, middle.round_trip_ns / 2,
                          sum(e.t1 for e in best) // len(best), len(exchanges))


@dataclass(frozen=True)
class ClockModel:
    """Maps a VM's CLOCK_MONOTONIC to the driver's: linear between two estimates."""

    before: OffsetEstimate
    after: OffsetEstimate | None = None

    @property
    def drift_ppm(self) -> float:
        if self.after is None or self.after.at_ns == self.before.at_ns:
            return 0.0
        return ((self.after.offset_ns - self.before.offset_ns)
                / (self.after.at_ns - self.before.at_ns) * 1e6)

    @property
    def uncertainty_ns(self) -> float:
        bounds = [self.before.uncertainty_ns]
        if self.after is not None:
            bounds.append(self.after.uncertainty_ns)
        return max(bounds)

    def offset_at(self, driver_ns: float) -> float:
        return self.before.offset_ns + self.drift_ppm * 1e-6 * (driver_ns - self.before.at_ns)

    def to_driver(self, vm_ns: float) -> float:
        """The driver-clock time of VM-clock time ``vm_ns``."""
        # vm = d + o(d), o linear in d: d = (vm - o0 + k * a0) / (1 + k)
        k = self.drift_ppm * 1e-6
        return (vm_ns - self.before.offset_ns + k * self.before.at_ns) / (1 + k)

    def to_vm(self, driver_ns: float) -> int:
        return round(driver_ns + self.offset_at(driver_ns))


def measure(sock: socket.socket, address: tuple[str, int], *, count: int = 40,
            interval_s: float = 0.01, timeout_s: float = 0.5) -> list[Exchange]:
    """``count`` request/reply exchanges with a clock server; lost ones are skipped."""
    sock.settimeout(timeout_s)
    out: list[Exchange] = []
    for sequence in range(count):
        t1 = time.monotonic_ns()
        sock.sendto(REQUEST.pack(sequence, t1), address)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                data, _ = sock.recvfrom(64)
            except TimeoutError:
                break
            t4 = time.monotonic_ns()
            if len(data) != REPLY.size:
                continue
            seq, echoed, t2, t3 = REPLY.unpack(data)
            if seq == sequence and echoed == t1:
                out.append(Exchange(t1, t2, t3, t4))
                break
        time.sleep(interval_s)
    return out


def answer(sock: socket.socket) -> None:
    """Answer one waiting request (the server half, in the VM's node)."""
    data, peer = sock.recvfrom(64)
    t2 = time.monotonic_ns()
    if len(data) != REQUEST.size:
        return
    sequence, t1 = REQUEST.unpack(data)
    sock.sendto(REPLY.pack(sequence, t1, t2, time.monotonic_ns()), peer)
