"""A command flow's time series from its captured packets, in the run's bins.

The columns are the results contract's (``recv_rate_bps``, ``delay_ms``,
``loss``), so plots and reports treat a command flow like netlab's own:
the rate is payload delivered at the exit per bin, the delay the mean
one-way delay of the packets leaving in the bin, and the loss the share
of the packets entering in the bin that never left.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from endpoints.metrics.series import rate_series
from netlab.capture.traffic import TrafficRow

BIN_NS = 100_000_000  # the run's time-series bins


def _stack(rows: list[TrafficRow], name: str) -> npt.NDArray[np.int64]:
    parts = [np.frombuffer(getattr(r.samples, name), dtype=np.int64) for r in rows
             if r.samples is not None]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _per_bin(times: npt.NDArray[np.int64], weights: npt.NDArray[np.float64], start_ns: int,
             count: int, bin_ns: int) -> npt.NDArray[np.float64]:
    index = (times - start_ns) // bin_ns
    keep = (index >= 0) & (index < count)
    totals = np.bincount(index[keep], weights=weights[keep], minlength=count)[:count]
    return np.asarray(totals, dtype=np.float64)


def flow_columns(rows: list[TrafficRow], start_ns: int, end_ns: int,
                 bin_ns: int = BIN_NS) -> dict[str, list[float | None]]:
    """``recv_rate_bps``, ``delay_ms`` and ``loss`` per bin of ``[start_ns,
    end_ns)`` (Unix ns, the captures' clock) over ``rows`` (one flow's, e.g.
    from ``sender_rows``); None where a bin has no packet to judge."""
    count = max(1, -(-(end_ns - start_ns) // bin_ns))
    exits = _stack(rows, "exit_ns")
    delays = _stack(rows, "delays_ns").astype(np.float64)
    rates = rate_series(exits, _stack(rows, "payloads"), bin_ns=bin_ns, start_ns=start_ns,
                        end_ns=end_ns).rate_bps
    leaving = _per_bin(exits, np.ones_like(delays), start_ns, count, bin_ns)
    delay_sum = _per_bin(exits, delays, start_ns, count, bin_ns)
    entered = _per_bin(exits - delays.astype(np.int64), np.ones_like(delays), start_ns, count,
                       bin_ns)
    lost_at = _stack(rows, "lost_entry_ns")
    lost = _per_bin(lost_at, np.ones(lost_at.shape), start_ns, count, bin_ns)
    return {
        "recv_rate_bps": [float(r) for r in rates[:count]],
        "delay_ms": [float(d / n / 1e6) if n else None for d, n in zip(delay_sum, leaving,
                                                                         strict=True)],
        "loss": [float(x / (x + e)) if x + e else None for x, e in zip(lost, entered,
                                                                      strict=True)],
    }
