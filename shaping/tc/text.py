"""tc's textual units, for dry-run output that pastes into a shell."""

from __future__ import annotations


def rate_text(rate_bps: int) -> str:
    """``10Mbit`` when exact, else plain bits (tc's SI suffixes, bits/s)."""
    for factor, suffix in ((10**9, "Gbit"), (10**6, "Mbit"), (10**3, "Kbit")):
        if rate_bps >= factor and rate_bps % factor == 0:
            return f"{rate_bps // factor}{suffix}"
    return f"{rate_bps}bit"


def time_text(seconds: float) -> str:
    """``20ms`` when a whole number of milliseconds, else microseconds."""
    micros = round(seconds * 1e6)
    return f"{micros // 1000}ms" if micros % 1000 == 0 else f"{micros}us"


def percent_text(probability: float) -> str:
    return f"{probability * 100:g}%"
