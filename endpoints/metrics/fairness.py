"""Jain's fairness index (Jain, Chiu & Hawe, DEC-TR-301, 1984):
J = (Σx)² / (n·Σx²), 1 when all flows get the same, 1/n when one gets all."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def jain_index(values: npt.ArrayLike) -> float:
    """Jain's index of the throughputs ``values`` (one per flow).

    Undefined (NaN) when every value is zero: nobody got anything, which is
    neither fair nor unfair. Raises ValueError for no flows or negative rates.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        raise ValueError("Jain's index needs at least one flow")
    if np.any(data < 0):
        raise ValueError("Jain's index is defined for non-negative throughputs")
    squares = float(np.sum(data * data))
    if squares == 0.0:
        return float("nan")
    return float(np.sum(data) ** 2 / (data.size * squares))


def jain_over_time(rates: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Jain's index per time bin of a ``(flows, bins)`` rate matrix (NaN in
    bins where no flow sent)."""
    matrix = np.asarray(rates, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError("expected a (flows, bins) matrix with at least one flow")
    sums = matrix.sum(axis=0)
    squares = (matrix * matrix).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        index = sums * sums / (matrix.shape[0] * squares)
    return np.where(squares > 0, index, np.nan)
