"""Loss from sequence numbers, robust to reordering and duplicates.

A packet counts as lost when its sequence number never arrives; a late
(reordered) packet is not lost, and a duplicate is not a second packet.
With the sender's log the expected set is exactly what was sent; without
it, the expected range is first..last received (gaps are losses; packets
lost after the last arrival are invisible, as in RFC 3550 A.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class LossStats:
    expected: int
    received: int  # distinct sequence numbers received
    lost: int
    duplicates: int  # arrivals of an already received sequence number
    reordered: int  # first arrivals below the highest number seen before them

    @property
    def loss(self) -> float:
        """Fraction of expected packets never received (0.0 when none expected)."""
        return self.lost / self.expected if self.expected else 0.0


def unwrap_sequence(seqs: npt.ArrayLike, bits: int = 16) -> npt.NDArray[np.int64]:
    """Unwrap ``bits``-wide sequence numbers (RTP: 16) in arrival order:
    each step is taken as the signed difference closest to zero, so
    reordering across a wrap stays in place."""
    raw = np.asarray(seqs, dtype=np.int64)
    if raw.size == 0:
        return raw.copy()
    modulus = 1 << bits
    half = modulus >> 1
    steps = np.diff(raw) % modulus
    steps = np.where(steps >= half, steps - modulus, steps)
    return np.concatenate(([raw[0]], raw[0] + np.cumsum(steps)))


def loss_from_sequences(received: npt.ArrayLike,
                        sent: npt.ArrayLike | None = None) -> LossStats:
    """Loss statistics from received sequence numbers in arrival order
    (already unwrapped), and optionally the sequence numbers sent."""
    arrivals = np.asarray(received, dtype=np.int64)
    unique, first_index = np.unique(arrivals, return_index=True)
    duplicates = int(arrivals.size - unique.size)
    # Reordered: a first arrival whose number is below the running maximum
    # of everything that arrived before it.
    firsts = np.zeros(arrivals.size, dtype=bool)
    firsts[first_index] = True
    if arrivals.size:
        running_max = np.maximum.accumulate(arrivals)
        prior_max = np.concatenate(([np.iinfo(np.int64).min], running_max[:-1]))
        reordered = int(np.count_nonzero(firsts & (arrivals < prior_max)))
    else:
        reordered = 0
    if sent is not None:
        expected_set = np.unique(np.asarray(sent, dtype=np.int64))
        got = np.isin(expected_set, unique)
        received_count = int(np.count_nonzero(got))
        return LossStats(expected=int(expected_set.size), received=received_count,
                         lost=int(expected_set.size - received_count),
                         duplicates=duplicates, reordered=reordered)
    if unique.size == 0:
        return LossStats(0, 0, 0, duplicates, reordered)
    expected = int(unique[-1] - unique[0] + 1)
    return LossStats(expected=expected, received=int(unique.size),
                     lost=expected - int(unique.size), duplicates=duplicates,
                     reordered=reordered)
