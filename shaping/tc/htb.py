"""HTB shaping: root ``htb`` qdisc, one class carrying the rate, a leaf queue.

HTB is the default for trace replay: changing a class keeps its tokens,
whereas tbf refills its bucket on every change (re-setting the same rate
every 10 ms delivered 1.10x the rate, docs/design.md "Facts measured").
Tree: ``htb 1: default 10`` -> class ``1:10`` -> leaf (fifo or netem).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from shaping.tc.base import Plan, TcShaper
from shaping.tc.burst import FRAME_BYTES
from shaping.tc.ops import TcOp
from shaping.tc.text import rate_text
from shaping.tc.wire import (
    TC_H_ROOT,
    U32_MAX,
    attr,
    make_handle,
    ratespec,
    seconds_to_ticks,
    u64_attr,
)

TCA_HTB_PARMS = 1
TCA_HTB_INIT = 2
TCA_HTB_RATE64 = 6
TCA_HTB_CEIL64 = 7
HTB_VERSION = 3
R2Q = 10

ROOT = make_handle(1)
CLASS_MINOR = 0x10
CLASS = make_handle(1, CLASS_MINOR)


@dataclass(frozen=True)
class HtbQdiscOptions:
    """``htb default <minor>``: unclassified traffic (all of it) goes to the class."""

    default_minor: int
    kind: str = "htb"

    def encode(self) -> bytes:
        # struct tc_htb_glob: version, rate2quantum, defcls, debug, direct_pkts
        glob = struct.pack("=IIIII", HTB_VERSION, R2Q, self.default_minor, 0, 0)
        return attr(TCA_HTB_INIT, glob)

    def render(self) -> str:
        return f"default {self.default_minor:x}"


@dataclass(frozen=True)
class HtbClassOptions:
    """One class whose rate and ceil are equal (no borrowing)."""

    rate_bps: int
    burst_bytes: int
    # A single class never competes for its parent's bandwidth, so the
    # quantum only needs to be >= one frame; setting it explicitly also
    # silences the kernel's "quantum is small/big" warnings from r2q.
    quantum: int = FRAME_BYTES
    kind: str = "htb"

    def encode(self) -> bytes:
        rate = self.rate_bps // 8
        buffer = seconds_to_ticks(self.burst_bytes / rate)
        # struct tc_htb_opt: rate, ceil, buffer, cbuffer, quantum, level, prio
        parms = ratespec(rate) + ratespec(rate)
        parms += struct.pack("=IIIII", buffer, buffer, self.quantum, 0, 0)
        out = attr(TCA_HTB_PARMS, parms)
        if rate > U32_MAX:
            out += u64_attr(TCA_HTB_RATE64, rate) + u64_attr(TCA_HTB_CEIL64, rate)
        return out

    def render(self) -> str:
        rate = rate_text(self.rate_bps)
        return (
            f"rate {rate} ceil {rate} burst {self.burst_bytes}b cburst {self.burst_bytes}b"
            f" quantum {self.quantum}"
        )


class HtbShaper(TcShaper):
    """Rate in an htb class; the leaf under it bounds the queue (and delays)."""

    strategy = "htb"
    leaf_parent = CLASS

    def _install_ops(self, plan: Plan) -> list[TcOp]:
        return [
            TcOp("add", "qdisc", self.ifname, TC_H_ROOT, ROOT, HtbQdiscOptions(CLASS_MINOR)),
            TcOp("add", "class", self.ifname, ROOT, CLASS, self._class_options(plan)),
            TcOp("add", "qdisc", self.ifname, CLASS, plan.leaf.handle, plan.leaf.options),
        ]

    def _change_ops(self, old: Plan, new: Plan) -> list[TcOp]:
        ops = []
        if (old.rate_bps, old.burst_bytes) != (new.rate_bps, new.burst_bytes):
            ops.append(TcOp("change", "class", self.ifname, ROOT, CLASS, self._class_options(new)))
        ops += self._leaf_ops(old, new)
        return ops

    def _class_options(self, plan: Plan) -> HtbClassOptions:
        return HtbClassOptions(plan.rate_bps, plan.burst_bytes)

    def _stats_handle(self) -> int:
        return ROOT
