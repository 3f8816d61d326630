"""TBF shaping: a root ``tbf`` qdisc whose single child is the leaf queue.

Tree: ``tbf 1:`` -> child at ``1:1`` (fifo or netem).  tbf segments a GSO
packet larger than its bucket instead of dropping it, but it refills the
bucket on every change (``tbf_change`` sets tokens = buffer), so rapid
replays deliver more than asked: prefer htb for trace replay.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from shaping.tc.base import Plan, TcShaper
from shaping.tc.burst import FRAME_BYTES
from shaping.tc.leaf import FifoOptions
from shaping.tc.ops import TcOp
from shaping.tc.text import rate_text
from shaping.tc.wire import (
    TC_H_ROOT,
    U32_MAX,
    attr,
    make_handle,
    ratespec,
    seconds_to_ticks,
    u32_attr,
    u64_attr,
)

TCA_TBF_PARMS = 1
TCA_TBF_RATE64 = 4
TCA_TBF_BURST = 6

ROOT = make_handle(1)
CHILD_PARENT = make_handle(1, 1)


@dataclass(frozen=True)
class TbfOptions:
    rate_bps: int
    burst_bytes: int
    # With a fifo child, tbf_change() passes this limit on to the child
    # (fifo_set_limit), in the child's own unit (packets for pfifo).
    limit: int
    kind: str = "tbf"

    def encode(self) -> bytes:
        rate = self.rate_bps // 8
        # struct tc_tbf_qopt: rate, peakrate (unused), limit, buffer, mtu
        parms = ratespec(rate) + bytes(12)
        parms += struct.pack("=III", self.limit, seconds_to_ticks(self.burst_bytes / rate), 0)
        out = attr(TCA_TBF_PARMS, parms) + u32_attr(TCA_TBF_BURST, self.burst_bytes)
        if rate > U32_MAX:
            out += u64_attr(TCA_TBF_RATE64, rate)
        return out

    def render(self) -> str:
        return f"rate {rate_text(self.rate_bps)} burst {self.burst_bytes}b limit {self.limit}"


class TbfShaper(TcShaper):
    """Rate in the root tbf; its child bounds the queue (and delays)."""

    strategy = "tbf"
    leaf_parent = CHILD_PARENT

    def _install_ops(self, plan: Plan) -> list[TcOp]:
        # tbf creates a default bfifo child; the leaf replaces it.
        return [
            TcOp("add", "qdisc", self.ifname, TC_H_ROOT, ROOT, self._options(plan)),
            self._graft_leaf(plan.leaf),
        ]

    def _change_ops(self, old: Plan, new: Plan) -> list[TcOp]:
        ops = []
        swap = old.leaf.kind != new.leaf.kind
        if swap:
            self.leaf_swaps += 1
            ops.append(self._graft_leaf(new.leaf))
        if self._options(old) != self._options(new):
            ops.append(TcOp("change", "qdisc", self.ifname, TC_H_ROOT, ROOT, self._options(new)))
        if not swap and new.leaf.kind == "netem" and old.leaf != new.leaf:
            ops.append(TcOp("change", "qdisc", self.ifname, CHILD_PARENT, new.leaf.handle,
                            new.leaf.options))
        return ops

    def _options(self, plan: Plan) -> TbfOptions:
        leaf = plan.leaf.options
        if isinstance(leaf, FifoOptions):
            limit = leaf.limit
        else:  # netem child: tbf's limit is unused; show its size in bytes
            limit = min(U32_MAX, leaf.limit * FRAME_BYTES)
        return TbfOptions(plan.rate_bps, plan.burst_bytes, limit)

    def _stats_handle(self) -> int:
        return ROOT
