"""One-way delay and percentiles.

Percentiles use numpy's default linear interpolation (Hyndman & Fan type 7),
the same as ``np.percentile`` in OpenNetLab's scoring, so our p95 and theirs
agree on the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 95.0, 99.0)


def one_way_delay_ms(send_ns: npt.ArrayLike, arrival_ns: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``arrival - send`` in ms for packets that carry a send time
    (``send_ns >= 0``; the RTC receiver logs -1 without one)."""
    send = np.asarray(send_ns, dtype=np.int64)
    arrival = np.asarray(arrival_ns, dtype=np.int64)
    keep = send >= 0
    return (arrival[keep] - send[keep]).astype(np.float64) / 1e6


def percentiles(values: npt.ArrayLike, qs: Sequence[float] = DEFAULT_PERCENTILES,
                ) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ..., "p99": ...}``; None for every key when
    there are no samples (a results file must not carry NaN)."""
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    keys = [f"p{q:g}".replace(".", "_") for q in qs]
    if data.size == 0:
        return dict.fromkeys(keys)
    found = np.percentile(data, list(qs))
    return {key: float(value) for key, value in zip(keys, found, strict=True)}
