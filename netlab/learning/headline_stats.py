"""Paired contrasts between arms over scenarios and training seeds.

An arm's value on a scenario is the mean over its training seeds; a
contrast is the mean over scenarios of (arm a − arm b). Its 95 % interval
is a two-level (nested) percentile bootstrap: each resample draws the
scenarios with replacement, then, per arm, its seeds with replacement, so
the interval carries both the test set's and the training seeds' spread
(Davison & Hinkley, "Bootstrap Methods and their Application", 1997,
section 3.8, resampling hierarchical data at both stages). Scenarios where
either arm has no value (every episode left out as unfaithful) are dropped
from that contrast and counted.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]


def _matrix(seeds: Mapping[str, Sequence[float | None]]) -> Matrix:
    """seeds × scenarios, NaN where a value is missing."""
    return np.array([[np.nan if v is None else float(v) for v in values]
                     for values in seeds.values()], dtype=np.float64)


def _resampled_means(values: Matrix, scenario_draws: npt.NDArray[np.int64],
                     rng: np.random.Generator) -> Matrix:
    """resamples × drawn scenarios: the mean over a seed resample, per resample."""
    seeds = values.shape[0]
    seed_draws = rng.integers(0, seeds, size=(scenario_draws.shape[0], seeds))
    picked = values[seed_draws[:, :, None], scenario_draws[:, None, :]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, dropped below
        means: Matrix = np.nanmean(picked, axis=1)
    return means


def contrast(a: Mapping[str, Sequence[float | None]], b: Mapping[str, Sequence[float | None]],
             *, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
             ) -> dict[str, Any]:
    """``{mean, low, high, scenarios, dropped, seeds_a, seeds_b, beats}`` for a − b."""
    va, vb = _matrix(a), _matrix(b)
    if va.shape[1] != vb.shape[1]:
        raise ValueError("both arms need one value per test scenario")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, dropped below
        mean_a, mean_b = np.nanmean(va, axis=0), np.nanmean(vb, axis=0)
    keep = np.flatnonzero(np.isfinite(mean_a) & np.isfinite(mean_b))
    out: dict[str, Any] = {"scenarios": int(keep.size),
                           "dropped": int(va.shape[1] - keep.size),
                           "seeds_a": int(va.shape[0]), "seeds_b": int(vb.shape[0])}
    if keep.size == 0:
        return {**out, "mean": None, "low": None, "high": None, "beats": None}
    diff = mean_a[keep] - mean_b[keep]
    rng = np.random.default_rng(seed)
    draws = keep[rng.integers(0, keep.size, size=(resamples, keep.size))]
    boot_a = _resampled_means(va, draws, rng)
    boot_b = _resampled_means(vb, draws, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, dropped below
        stats = np.nanmean(boot_a - boot_b, axis=1)
    stats = stats[np.isfinite(stats)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return {**out, "mean": float(diff.mean()), "low": float(low), "high": float(high),
            "beats": float(np.mean(diff > 0))}
