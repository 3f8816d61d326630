"""Numbers as the live view and the summary print them."""

from __future__ import annotations

import math


def number(value: object) -> float | None:
    """A finite number from a JSON value, else None (null, NaN, strings, bools)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def format_bps(value: float | None) -> str:
    """2_410_000 → '2.41 Mbit/s' (three significant digits)."""
    if value is None:
        return "–"
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if abs(value) >= scale:
            scaled = value / scale
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            return f"{scaled:.{digits}f} {unit}"
    return f"{value:.0f} bit/s"


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def count(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"
