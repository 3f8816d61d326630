"""What one direction of a link is asked to do, in SI units.

Every shaping backend (kernel tc, user-space link) consumes this one value
type, so a scenario's numbers reach the kernel without unit conversions
scattered through the code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from labcore.units import QueueLimit

__all__ = ["LinkShape", "QueueLimit"]


@dataclass(frozen=True)
class LinkShape:
    """Rate, delay, jitter, loss and queue bound for one link direction.

    ``rate_bps`` counts whole Ethernet frames (what tc counts); ``None`` means
    unshaped.  ``loss`` is a probability in [0, 1].
    """

    rate_bps: int | None = None
    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    queue: QueueLimit | None = None

    @property
    def needs_netem(self) -> bool:
        """Delay, jitter and loss need netem (or the user-space link)."""
        return self.delay_s > 0 or self.jitter_s > 0 or self.loss > 0

    def with_rate(self, rate_bps: int | None) -> LinkShape:
        return replace(self, rate_bps=rate_bps)
