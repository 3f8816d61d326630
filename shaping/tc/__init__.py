"""Kernel tc shaping backend: htb or tbf rate, netem beneath, over netlink.

One shaper per link direction, on the egress of that direction's veth end::

    shaper = make_shaper("htb", ipr, "veth0", netem=has_netem)
    shaper.apply(LinkShape(rate_bps=10_000_000, queue=QueueLimit(packets=100)))
    shaper.change(LinkShape(rate_bps=5_000_000, queue=QueueLimit(packets=100)))
    shaper.remove()

``make_shaper(..., dry_run=DryRun())`` sends nothing; ``DryRun.lines()``
shows the equivalent ``tc`` commands.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from shaping.spec import LinkShape
from shaping.tc.base import OUTAGE_RATE_BPS, UNSHAPED_RATE_BPS, Plan, TcShaper
from shaping.tc.burst import FRAME_BYTES, burst_bytes, default_queue
from shaping.tc.dryrun import DryRun
from shaping.tc.htb import HtbShaper
from shaping.tc.offload import limit_offloads, set_offloads
from shaping.tc.tbf import TbfShaper

__all__ = [
    "FRAME_BYTES",
    "OUTAGE_RATE_BPS",
    "UNSHAPED_RATE_BPS",
    "DryRun",
    "HtbShaper",
    "Plan",
    "Shaper",
    "TbfShaper",
    "TcShaper",
    "burst_bytes",
    "default_queue",
    "limit_offloads",
    "make_shaper",
    "set_offloads",
]

Strategy = Literal["htb", "tbf"]


class Shaper(Protocol):
    """One link direction on the egress of ``ifname``."""

    ifname: str

    def apply(self, shape: LinkShape) -> None: ...

    def change(self, shape: LinkShape) -> None: ...

    def remove(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


_STRATEGIES: dict[str, type[TcShaper]] = {"htb": HtbShaper, "tbf": TbfShaper}


def make_shaper(
    strategy: Strategy, ipr: Any, ifname: str, *, netem: bool, dry_run: DryRun | None = None
) -> TcShaper:
    """A shaper for ``ifname`` in the namespace ``ipr`` (a pyroute2 IPRoute) is opened in.

    ``netem`` says whether the kernel has sch_netem; without it a shape with
    delay, jitter or loss raises ShapingError.  With ``dry_run`` nothing is
    sent and ``ipr`` is not used (it may be None).
    """
    try:
        cls = _STRATEGIES[strategy]
    except KeyError:
        from shaping.errors import ShapingError

        raise ShapingError(
            f"unknown shaping strategy {strategy!r}",
            where=f"interface {ifname}",
            fix="use 'htb' (default, best for trace replay) or 'tbf'",
        ) from None
    return cls(ipr, ifname, netem=netem, dry_run=dry_run)
