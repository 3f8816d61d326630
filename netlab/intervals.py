"""Confidence intervals for a few repeated runs: Student's t for a mean, Welch for a difference.

With three to ten runs per side a normal interval is far too narrow (the
t quantile for 2 degrees of freedom is 4.30, not 1.96), and the two sides of
a comparison (namespaces, VMs) have different spreads, so the difference's
interval uses Welch's degrees of freedom (Welch 1947, *Biometrika* 34:28-35).
The t quantile is computed here from the regularized incomplete beta function
(Numerical Recipes, 3rd ed., §6.4 and §6.14.9) rather than pulling in scipy.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

CONFIDENCE = 0.95
_EPS = 3e-16
_TINY = 1e-300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), by the modified Lentz method."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (> 0, not necessarily whole) degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value below which ``p`` of the distribution lies (bisection on ``t_cdf``)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided ``CONFIDENCE`` interval (None with fewer than two values)."""

    n: int
    mean: float
    sd: float
    low: float | None
    high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> Interval:
    """Student's t interval for the mean of ``values``."""
    if not values:
        raise ValueError("mean_interval needs at least one value")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(len(values), mean, 0.0, None, None)
    sd = statistics.stdev(values)
    half = t_quantile(0.5 + confidence / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return Interval(len(values), mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Difference:
    """``b - a`` with Welch's interval; ``relative*``: the same over ``a``'s mean."""

    value: float
    low: float | None
    high: float | None
    df: float | None
    relative: float | None
    relative_low: float | None
    relative_high: float | None


def welch_difference(a: Interval, b: Interval, confidence: float = CONFIDENCE) -> Difference:
    """The difference of two means (``b - a``) with Welch's t interval.

    The relative figures divide by ``a``'s mean (the reference side), treating it as
    known: with the same few runs on each side that understates the width a little.
    """
    value = b.mean - a.mean
    low = high = df = None
    if a.n >= 2 and b.n >= 2:
        va, vb = a.sd ** 2 / a.n, b.sd ** 2 / b.n
        se = math.sqrt(va + vb)
        if se == 0.0:
            low = high = value
        else:
            df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
            half = t_quantile(0.5 + confidence / 2, df) * se
            low, high = value - half, value + half
    if a.mean == 0.0:
        return Difference(value, low, high, df, None, None, None)
    scale = abs(a.mean)
    return Difference(value, low, high, df, value / scale,
                      None if low is None else low / scale,
                      None if high is None else high / scale)
