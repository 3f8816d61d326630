"""Random loss at the link's input: IID (Bernoulli) or Gilbert-Elliott bursts.

Gilbert-Elliott is the two-state Markov model of E. N. Gilbert, "Capacity of a
burst-noise channel" (Bell Syst. Tech. J., 1960) and E. O. Elliott, "Estimates
of error rates for codes on burst-noise channels" (1963), parameterised as in
netem's ``loss gemodel p r 1-h 1-k`` (S. Salsano et al., "Definition of a
general and intuitive loss model for packet networks and its implementation in
the Netem module in the Linux kernel", 2012): per packet, in the good state the
packet is lost with probability ``good_loss`` (1-k) and the chain moves to bad
with probability ``p``; in the bad state it is lost with probability
``bad_loss`` (1-h) and moves back with probability ``r``.  As in netem's
``loss_gilb_ell`` the loss is decided by the state the packet finds.  The
stationary loss rate is ``(r * good_loss + p * bad_loss) / (p + r)`` and the
mean bad-state sojourn is ``1 / r`` packets.
"""

from __future__ import annotations

import random

REASON_LOSS_IID = 1
REASON_LOSS_GILBERT = 2


class LossModel:
    """Decides, per arriving packet, whether it is lost and why (0 = kept)."""

    __slots__ = ("bad", "gilbert", "rng")

    def __init__(self, seed: int, gilbert: tuple[float, float, float, float] | None) -> None:
        self.rng = random.Random(f"loss-{seed}")
        self.gilbert = gilbert
        self.bad = False

    def decide(self, iid_loss: float) -> int:
        gil = self.gilbert
        if gil is None:
            if iid_loss > 0.0 and self.rng.random() < iid_loss:
                return REASON_LOSS_IID
            return 0
        p, r, bad_loss, good_loss = gil
        rnd = self.rng.random
        if self.bad:
            lost = rnd() < bad_loss
            if rnd() < r:
                self.bad = False
        else:
            lost = rnd() < good_loss
            if rnd() < p:
                self.bad = True
        return REASON_LOSS_GILBERT if lost else 0


def gilbert_mean_loss(gilbert: tuple[float, float, float, float]) -> float:
    """Stationary loss probability of the chain (for reports and tests)."""
    p, r, bad_loss, good_loss = gilbert
    if p + r == 0:
        return good_loss
    return (r * good_loss + p * bad_loss) / (p + r)
