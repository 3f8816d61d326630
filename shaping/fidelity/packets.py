"""Added delay and loss, asked vs seen, from the user-space link's per-packet log.

**Added delay** is the time the link holds a packet *after* the rate server
has released it: the emulated propagation delay (plus jitter), i.e. what
netem's ``delay`` or mm-delay adds, excluding queueing and serialisation,
which depend on the traffic.  The link model computes for every delivered
packet the instant it is due out (``due_ns`` = release + asked delay + the
jitter drawn for it); the packet really leaves at ``departure_ns``.  So

    delay error = seen added delay - asked added delay = departure_ns - due_ns

which is exactly the emulator's lateness on the output side (it cannot be
early: a packet is never written before it is due).  The kernel backend has
no per-packet log; there the lab passes delay errors from a probe (e.g. half
the idle echo RTT minus the asked one-way delay).

**Loss**: seen = packets the loss model dropped / packets that arrived
(queue overflows are congestion, not emulated loss, and are left out);
asked = the asked loss probability in force at each arrival, averaged over
arrivals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from shaping.fidelity.series import IntArray, StepSeries, step_series

#: userlink ``REASON_LOSS_IID`` and ``REASON_LOSS_GILBERT`` (shaping/userlink/loss.py).
LOSS_REASONS = (1, 2)


def delivered(packets: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return packets[packets["departure_ns"] >= 0]


def delay_errors_ns(packets: npt.NDArray[Any]) -> IntArray:
    """Seen minus asked added delay of every delivered packet, in ns."""
    done = delivered(packets)
    errors: IntArray = (done["departure_ns"] - done["due_ns"]).astype(np.int64)
    return errors


def served_ns(packets: npt.NDArray[Any], delay_asked: StepSeries) -> IntArray:
    """When each delivered packet left the rate server: ``due_ns`` minus the asked delay.

    The delay is looked up at the due time's change schedule; jitter is not
    known per packet, so with jitter this is off by the jitter drawn.
    """
    done = delivered(packets)
    due = done["due_ns"].astype(np.int64)
    delay = np.nan_to_num(delay_asked.at(due), nan=0.0)
    result: IntArray = due - np.round(delay * 1e9).astype(np.int64)
    return result


def delay_from_changes(changes: npt.NDArray[Any]) -> StepSeries:
    order = np.argsort(changes["applied_ns"], kind="stable")
    return step_series(changes["applied_ns"][order], changes["delay_s"][order])


def loss_from_changes(changes: npt.NDArray[Any]) -> StepSeries:
    order = np.argsort(changes["applied_ns"], kind="stable")
    return step_series(changes["applied_ns"][order], changes["loss"][order])


def loss_asked_seen(packets: npt.NDArray[Any], loss_asked: StepSeries | float
                    ) -> tuple[float | None, float | None, int]:
    """``(asked, seen, packets that arrived)``; None, None, 0 without packets.

    ``loss_asked`` is a series (from a change log, by applied time: the
    probability the link really used) or one number (e.g. the stationary
    loss of a Gilbert-Elliott model).
    """
    count = len(packets)
    if count == 0:
        return None, None, 0
    lost = int(np.isin(packets["reason"], LOSS_REASONS).sum())
    if isinstance(loss_asked, StepSeries):
        asked = float(np.nan_to_num(loss_asked.at(packets["arrival_ns"]), nan=0.0).mean())
    else:
        asked = float(loss_asked)
    return asked, lost / count, count
