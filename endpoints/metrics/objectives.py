"""What a call is scored on and what a learner is rewarded for, defined once.

Two whole-call scores, both weighed by OpenNetLab's formula
(:func:`endpoints.metrics.opennetlab.network_points`: 20 × delay + 20 × rate
+ 30 × (1 − loss)):

* ``network``: OpenNetLab's own, unchanged (:mod:`endpoints.metrics.opennetlab`).
  Its rate term is the mean over the call's streams of the payload rate
  against a fixed 4 Mbit/s, so it cannot tell a call that fills a 1 Mbit/s
  link from one that sends 0.2 Mbit/s on it: both earn a few of 20 points,
  and low delay and no loss (50 points) are what it pays for.
* ``capacity``: the same delay and loss terms, with the rate term
  :func:`capacity_rate_term`: what the flow received against what the trace
  offered over the call. Sending little on a fast link now costs up to 20
  points; no link can be beaten by sending more than it carries.

The step rewards (``REWARDS``) use the same terms per receiver poll, so a
learner trained on one is trained on what the matching score judges:

* ``onl``: OpenNetLab's ``rtc_env`` reward (log rate − 0.2 × loss), kept for
  checkpoints trained on it;
* ``qoe``: the network score's terms with the rate log-normalised (the
  score's fixed 4 Mbit/s reference is not something a step can measure);
* ``capacity``: the capacity score's terms: the window's receive rate
  against the trace's capacity over the same window. It needs that capacity
  (``capacity_bps``), which a simulator knows and a lab's learner recomputes
  from the trace and the observation's time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from endpoints.metrics.opennetlab import MAX_DELAY_MS, NETWORK_WEIGHTS, network_points

#: An IPv4 header (RFC 791, 20 B) and a UDP header (RFC 768, 8 B): what a received
#: RTP packet occupied on the link beyond its UDP payload, for utilisation.
IPV4_UDP_HEADER_BYTES = 28
#: OpenNetLab's action range (``rtc_env``: 10 kbit/s–8 Mbit/s), in their unit of 1 Mbit/s.
MIN_MBPS, MAX_MBPS, UNIT_BPS = 0.01, 8.0, 1e6


def liner_to_log(bps: float) -> float:
    """OpenNetLab's ``liner_to_log``: a rate on their log scale, in [0, 1]."""
    value = min(max(bps / UNIT_BPS, MIN_MBPS), MAX_MBPS)
    return (math.log(value) - math.log(MIN_MBPS)) / (math.log(MAX_MBPS) - math.log(MIN_MBPS))


def utilization(received_bps: float, capacity_bps: float) -> float | None:
    """Received over offered; None when the trace offered nothing (an outage)."""
    if not (math.isfinite(capacity_bps) and capacity_bps > 0):
        return None
    return max(0.0, received_bps) / capacity_bps


def capacity_rate_term(received_bps: float, capacity_bps: float) -> float:
    """The capacity-normalised rate term in [0, 1]: utilisation, capped at 1.

    Where nothing was offered nothing could be received, so the term is full."""
    used = utilization(received_bps, capacity_bps)
    return 1.0 if used is None else min(1.0, used)


def step_delay_term(delay_ms: float) -> float:
    """The network score's delay term for one delay (relative to the stream's
    first packet, as the score's), on its linear 0–400 ms scale."""
    return (MAX_DELAY_MS - min(max(delay_ms, 0.0), MAX_DELAY_MS)) / MAX_DELAY_MS


def capacity_score(delay_score: float, loss_rate: float, received_bps: float,
                   capacity_bps: float) -> float:
    """The capacity-normalised network score (0–70) of a call: OpenNetLab's
    delay score and loss rate, with :func:`capacity_rate_term` for the rate."""
    return network_points(delay_score, capacity_rate_term(received_bps, capacity_bps),
                          loss_rate)


class Reward(Protocol):
    """A step reward of the raw ``rtc-onl4`` state that followed an action
    ([receive bps, mean delay ms, loss ratio, last estimate bps]) and the
    capacity the trace offered over that step, where the caller knows it."""

    def __call__(self, state: Sequence[float], capacity_bps: float | None = None) -> float: ...


def onl_reward(state: Sequence[float], capacity_bps: float | None = None) -> float:
    """OpenNetLab's ``rtc_env.step`` reward: normalised receive rate − 0.2 × loss ratio."""
    return liner_to_log(state[0]) - 0.2 * state[2]


def _loss(state: Sequence[float]) -> float:
    return min(max(state[2], 0.0), 1.0)


def qoe_reward(state: Sequence[float], capacity_bps: float | None = None) -> float:
    """The network score's terms per step, in [0, 1]: delay on its 400 ms
    scale, the receive rate log-normalised as in :func:`onl_reward`, loss."""
    return network_points(step_delay_term(state[1]), liner_to_log(state[0]),
                          _loss(state)) / sum(NETWORK_WEIGHTS)


def capacity_reward(state: Sequence[float], capacity_bps: float | None = None) -> float:
    """The capacity score's terms per step, in [0, 1]: :func:`qoe_reward` with
    the rate term the window's receive rate against ``capacity_bps``.

    The state's rate counts RTP payload only (OpenNetLab's state), so a step
    that fills the link reads a few per cent under 1."""
    if capacity_bps is None:
        raise ValueError("the capacity reward needs the capacity the trace offered "
                         "over the step (capacity_bps)")
    return network_points(step_delay_term(state[1]), capacity_rate_term(state[0], capacity_bps),
                          _loss(state)) / sum(NETWORK_WEIGHTS)


#: Rewards a learner may train on, by name.
REWARDS: dict[str, Reward] = {"onl": onl_reward, "qoe": qoe_reward,
                              "capacity": capacity_reward}
#: The rewards that read ``capacity_bps``: a caller must know the trace to use them.
NEEDS_CAPACITY = frozenset({"capacity"})
