"""What the sending application offers the socket: everything it can (bulk),
a fixed rate, or on/off periods; and the token bucket that enforces a rate
in the application (write only what the rate allows, so the flow is
application-limited rather than shaped by the kernel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from endpoints.tcp.errors import TcpEndpointError
from labcore import units

#: Smallest write the rate modes make when the bucket allows it: one
#: Ethernet-sized segment, so a slow rate is not sent as a drizzle of
#: tiny writes (each of which may become its own packet).
MIN_WRITE_BYTES: Final = 1448
#: Bucket depth as time at the configured rate; bounded below by a few
#: segments so slow rates can still write whole segments.
BUCKET_DEPTH_S: Final = 0.02
MIN_BUCKET_BYTES: Final = 4 * MIN_WRITE_BYTES


def parse_rate_bps(text: str, *, where: str) -> float:
    """``"5Mbit"`` -> 5e6 bit/s, in the one unit grammar (:mod:`labcore.units`);
    a bare number is bit/s."""
    try:
        return float(units.parse_rate(text, bare="bit"))
    except units.UnitError as exc:
        raise TcpEndpointError(exc.what, where=where, fix=exc.fix) from None


def parse_seconds(text: str, *, where: str) -> float:
    """``"1.5"``, ``"1.5s"`` or ``"200ms"`` -> seconds (:mod:`labcore.units`; bare is seconds)."""
    try:
        return units.parse_duration(text, bare="s")
    except units.UnitError as exc:
        raise TcpEndpointError(exc.what, where=where, fix=exc.fix) from None


@dataclass(frozen=True)
class SendMode:
    """How much the application offers. ``rate_bps`` None means as much as
    the socket takes; ``on_s``/``off_s`` are set for on/off only."""

    kind: str  # "bulk" | "rate" | "onoff"
    rate_bps: float | None = None
    on_s: float | None = None
    off_s: float | None = None

    def describe(self) -> str:
        if self.kind == "bulk":
            return "bulk"
        if self.kind == "rate":
            return f"rate:{self.rate_bps:.0f}bit"
        rate = f",{self.rate_bps:.0f}bit" if self.rate_bps is not None else ""
        return f"onoff:{self.on_s},{self.off_s}{rate}"

    def is_on(self, elapsed_ns: int) -> bool:
        """Whether the application sends at ``elapsed_ns`` since the start
        (always, except in the off part of an on/off period)."""
        if self.kind != "onoff":
            return True
        assert self.on_s is not None and self.off_s is not None
        period_ns = round((self.on_s + self.off_s) * 1e9)
        return elapsed_ns % period_ns < round(self.on_s * 1e9)

    def next_switch_ns(self, elapsed_ns: int) -> int | None:
        """Elapsed time of the next on/off switch, None when there is none."""
        if self.kind != "onoff":
            return None
        assert self.on_s is not None and self.off_s is not None
        period_ns = round((self.on_s + self.off_s) * 1e9)
        on_ns = round(self.on_s * 1e9)
        base = elapsed_ns - elapsed_ns % period_ns
        return base + on_ns if elapsed_ns - base < on_ns else base + period_ns


def parse_mode(text: str, *, where: str = "--mode") -> SendMode:
    """``bulk`` | ``rate:RATE`` | ``onoff:ON_S,OFF_S[,RATE]``."""
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind == "bulk" and not rest:
        return SendMode("bulk")
    if kind == "rate" and rest:
        return SendMode("rate", rate_bps=parse_rate_bps(rest, where=where))
    if kind == "onoff" and rest:
        parts = rest.split(",")
        if len(parts) in (2, 3):
            on_s = parse_seconds(parts[0], where=where)
            off_s = parse_seconds(parts[1], where=where)
            if on_s <= 0 or off_s < 0:
                raise TcpEndpointError(
                    f"on/off periods {parts[0]!r},{parts[1]!r} are not usable", where=where,
                    fix="give ON_S > 0 and OFF_S >= 0, e.g. onoff:1,1")
            rate = parse_rate_bps(parts[2], where=where) if len(parts) == 3 else None
            return SendMode("onoff", rate_bps=rate, on_s=on_s, off_s=off_s)
    raise TcpEndpointError(
        f"unknown sending mode {text!r}", where=where,
        fix="use bulk, rate:RATE (e.g. rate:5Mbit) or onoff:ON_S,OFF_S[,RATE] (e.g. onoff:1,1)")


class TokenBucket:
    """Bytes the application may write now at ``rate_bps``.

    Starts empty (no initial burst); holds at most ``depth_bytes`` so a
    pause (an off period, a full socket) is not followed by a burst larger
    than 20 ms at the rate.
    """

    def __init__(self, rate_bps: float, now_ns: int) -> None:
        self.rate_Bps = rate_bps / 8.0
        self.depth_bytes = max(float(MIN_BUCKET_BYTES), self.rate_Bps * BUCKET_DEPTH_S)
        self.min_write = int(min(MIN_WRITE_BYTES, self.depth_bytes))
        self.tokens = 0.0
        self._last_ns = now_ns

    def refill(self, now_ns: int) -> None:
        elapsed = max(0, now_ns - self._last_ns)
        self.tokens = min(self.depth_bytes, self.tokens + self.rate_Bps * elapsed / 1e9)
        self._last_ns = now_ns

    def reset(self, now_ns: int) -> None:
        """Empty the bucket (at the start of an on period)."""
        self.tokens = 0.0
        self._last_ns = now_ns

    def allowance(self) -> int:
        """Bytes to write now: 0 until at least ``min_write`` are allowed."""
        return int(self.tokens) if self.tokens >= self.min_write else 0

    def consume(self, nbytes: int) -> None:
        self.tokens -= nbytes

    def wait_ns(self) -> int:
        """Time until ``min_write`` bytes are allowed."""
        missing = self.min_write - self.tokens
        return 0 if missing <= 0 else int(missing / self.rate_Bps * 1e9) + 1
