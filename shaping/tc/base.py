"""What every tc shaper shares: planning a shape, applying and changing it.

A shape is first resolved into a :class:`Plan` (the exact numbers the kernel
gets); ``change()`` compares plans and sends only what differs, with every
parameter of a changed object resent (a netlink change replaces the whole
option set).  Identical plans send nothing, which also spares tbf the bucket
refill it does on every change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from shaping.errors import ShapingError
from shaping.spec import LinkShape, QueueLimit
from shaping.tc.burst import FRAME_BYTES, burst_bytes, default_queue, frames_for
from shaping.tc.dryrun import DryRun
from shaping.tc.leaf import Leaf, fifo_leaf
from shaping.tc.netem import NetemOptions, netem_limit
from shaping.tc.netlink import NetlinkSink
from shaping.tc.offload import gso_segments, read_offloads, set_offloads, shaped_offloads
from shaping.tc.ops import LinkOp, OpSink, TcOp
from shaping.tc.text import rate_text
from shaping.tc.wire import TC_H_ROOT

#: Rate installed for an unshaped direction (rate_bps None): far above what a
#: veth carries, so the tree exists (and later changes stay in place) without
#: limiting anything.
UNSHAPED_RATE_BPS = 100 * 10**9

#: Rate installed for an outage (rate_bps 0): both qdiscs need a rate > 0.
#: One frame takes 12 s at this rate.  htb keeps token debt in time across
#: changes, so a frame that leaves during an outage can hold the class up to
#: that long after it; tbf refills on change and has no such debt.
OUTAGE_RATE_BPS = 1000

#: Delay plus jitter that fits the u32 tick fields of netem (274 s), rounded down.
MAX_DELAY_S = 200.0


@dataclass(frozen=True)
class Plan:
    """The resolved numbers one shape puts into the kernel."""

    rate_bps: int
    burst_bytes: int
    queue: QueueLimit
    leaf: Leaf


def effective_rate(rate_bps: int | None) -> int:
    if rate_bps is None:
        return UNSHAPED_RATE_BPS
    return max(rate_bps, OUTAGE_RATE_BPS)


class TcShaper(ABC):
    """Shapes the egress of one interface with a rate qdisc and a leaf queue."""

    strategy: ClassVar[str]
    leaf_parent: ClassVar[int]

    def __init__(
        self, ipr: Any, ifname: str, *, netem: bool, dry_run: DryRun | None = None
    ) -> None:
        self.ifname = ifname
        self.netem_available = netem
        self._ipr = ipr
        self._sink: OpSink = dry_run if dry_run is not None else NetlinkSink(ipr, ifname)
        self._plan: Plan | None = None
        self._default_queue: QueueLimit | None = None
        self._saved_offloads: LinkOp | None = None
        #: Times change() had to graft a new leaf kind (this drops the old
        #: leaf's queued packets; see change()).
        self.leaf_swaps = 0

    # -- the Shaper protocol --------------------------------------------

    @property
    def plan(self) -> Plan | None:
        """What is installed now (None before apply / after remove)."""
        return self._plan

    def apply(self, shape: LinkShape) -> None:
        """Install the tree on the egress of the interface, replacing any root qdisc."""
        self._check(shape)
        self._default_queue = default_queue(shape.rate_bps, shape.delay_s, shape.jitter_s)
        plan = self._resolve(shape, keep_netem=False)
        if not isinstance(self._sink, DryRun) and self._saved_offloads is None:
            self._saved_offloads = read_offloads(self._ipr, self.ifname)
        queue_bytes = plan.queue.bytes or frames_for(plan.queue) * FRAME_BYTES
        segments = gso_segments(plan.rate_bps, plan.burst_bytes, queue_bytes)
        self._sink.run_link(shaped_offloads(self.ifname, segments))
        self._delete_root()
        for op in self._install_ops(plan):
            self._sink.run(op)
        self._plan = plan

    def change(self, shape: LinkShape) -> None:
        """Change the installed tree in place: same handles, queue kept.

        A shape without its own queue keeps the default queue chosen at
        apply().  Once netem is the leaf it stays (a delay of 0 is a plain
        delay line), so later changes stay in place; the first change that
        needs netem on a fifo leaf, or a queue changing between packets and
        bytes, grafts a new leaf, which drops the packets queued in the old
        one (counted in ``leaf_swaps``).
        """
        if self._plan is None:
            raise ShapingError(
                "change() called before apply()",
                where=f"interface {self.ifname}",
                fix="call apply() once to install the qdisc tree",
            )
        self._check(shape)
        plan = self._resolve(shape, keep_netem=self._plan.leaf.kind == "netem")
        if plan == self._plan:
            return
        for op in self._change_ops(self._plan, plan):
            self._sink.run(op)
        self._plan = plan

    def remove(self) -> None:
        """Delete the root qdisc (a missing one is fine) and restore offloads."""
        self._delete_root()
        if self._saved_offloads is not None:
            set_offloads(self._ipr, self._saved_offloads)
            self._saved_offloads = None
        self._plan = None

    def stats(self) -> dict[str, int]:
        """Counters of the shaping qdisc, for fidelity reports.

        ``drops`` counts every packet the tree dropped (queue overflow and
        netem loss); ``loss_drops`` the share netem dropped on purpose.
        """
        out = dict.fromkeys(
            ("bytes", "packets", "drops", "overlimits", "backlog_bytes", "backlog_packets",
             "loss_drops"),
            0,
        )
        if isinstance(self._sink, DryRun) or self._plan is None:
            return out
        assert isinstance(self._sink, NetlinkSink)
        leaf_handle = self._plan.leaf.handle if self._plan.leaf.kind == "netem" else None
        for msg in self._ipr.get_qdiscs(index=self._sink.index):
            handle = msg["handle"]
            if handle not in (self._stats_handle(), leaf_handle):
                continue
            stats2 = msg.get_attr("TCA_STATS2")
            basic = stats2.get_attr("TCA_STATS_BASIC")
            queue = stats2.get_attr("TCA_STATS_QUEUE")
            if handle == leaf_handle:
                out["loss_drops"] = int(queue["drops"])
                continue
            out["bytes"] = int(basic["bytes"])
            out["packets"] = int(basic["packets"])
            out["drops"] = int(queue["drops"])
            out["overlimits"] = int(queue["overlimits"])
            out["backlog_bytes"] = int(queue["backlog"])
            out["backlog_packets"] = int(queue["qlen"])
        return out

    # -- strategy hooks -------------------------------------------------

    @abstractmethod
    def _install_ops(self, plan: Plan) -> list[TcOp]:
        """Operations that build the tree from nothing."""

    @abstractmethod
    def _change_ops(self, old: Plan, new: Plan) -> list[TcOp]:
        """Operations that turn ``old`` into ``new`` in place."""

    @abstractmethod
    def _stats_handle(self) -> int:
        """Handle of the qdisc whose counters describe the whole link."""

    # -- shared helpers ---------------------------------------------------

    def _leaf_ops(self, old: Plan, new: Plan) -> list[TcOp]:
        if old.leaf.kind != new.leaf.kind:
            self.leaf_swaps += 1
            return [self._graft_leaf(new.leaf)]
        if old.leaf != new.leaf:
            return [TcOp("change", "qdisc", self.ifname, self.leaf_parent, new.leaf.handle,
                         new.leaf.options)]
        return []

    def _graft_leaf(self, leaf: Leaf) -> TcOp:
        return TcOp("replace", "qdisc", self.ifname, self.leaf_parent, leaf.handle, leaf.options)

    def _delete_root(self) -> None:
        try:
            self._sink.run(TcOp("delete", "qdisc", self.ifname, TC_H_ROOT, 0))
        except ShapingError as err:
            if err.errno != 2:  # ENOENT: no root qdisc of ours (veth's noqueue)
                raise

    def _resolve(self, shape: LinkShape, *, keep_netem: bool) -> Plan:
        rate = effective_rate(shape.rate_bps)
        queue = shape.queue or self._default_queue or default_queue(shape.rate_bps)
        if shape.needs_netem or keep_netem:
            limit = netem_limit(frames_for(queue), rate, shape.delay_s, shape.jitter_s)
            leaf = Leaf(NetemOptions(shape.delay_s, shape.jitter_s, shape.loss, limit))
        else:
            leaf = fifo_leaf(queue)
        return Plan(rate, burst_bytes(rate), queue, leaf)

    def _check(self, shape: LinkShape) -> None:
        where = f"interface {self.ifname}"

        def bad(what: str, field: str, fix: str) -> ShapingError:
            return ShapingError(what, where=f"{where}, {field}", fix=fix)

        if shape.rate_bps is not None and shape.rate_bps < 0:
            raise bad(f"rate {shape.rate_bps} bit/s is negative", "rate",
                      "give a rate >= 0 (0 = outage) or None (unshaped)")
        if shape.delay_s < 0 or shape.jitter_s < 0:
            raise bad("delay and jitter must be >= 0", "delay/jitter", "use non-negative times")
        if shape.delay_s + shape.jitter_s > MAX_DELAY_S:
            raise bad(f"delay + jitter {shape.delay_s + shape.jitter_s:g} s exceeds "
                      f"{MAX_DELAY_S:g} s", "delay/jitter", "use a shorter delay")
        if not 0.0 <= shape.loss <= 1.0:
            raise bad(f"loss {shape.loss} is not a probability", "loss",
                      "give loss in [0, 1] (0.005 = 0.5 %)")
        queue = shape.queue
        if queue is not None and queue.bytes is not None and queue.bytes < FRAME_BYTES:
            raise bad(f"a queue of {queue.bytes} B cannot hold one {FRAME_BYTES}-byte frame",
                      "queue", f"give at least {FRAME_BYTES}B, or a queue in packets")
        if queue is not None and queue.packets is not None and queue.packets < 1:
            raise bad("a queue needs room for at least 1 packet", "queue", "give queue >= 1pkt")
        if shape.needs_netem and not self.netem_available:
            asked = []
            if shape.delay_s:
                asked.append(f"delay {shape.delay_s * 1000:g} ms")
            if shape.jitter_s:
                asked.append(f"jitter {shape.jitter_s * 1000:g} ms")
            if shape.loss:
                asked.append(f"loss {shape.loss * 100:g} %")
            rate = "unshaped" if shape.rate_bps is None else rate_text(shape.rate_bps)
            raise ShapingError(
                f"this link asks for {', '.join(asked)} (rate {rate}), but the kernel has no "
                "netem qdisc (sch_netem), so the kernel tc backend can only shape rate and queue",
                where=where,
                fix="use the user-space link backend (it emulates delay, jitter and loss), "
                "or load netem with `modprobe sch_netem` (package linux-modules-extra on "
                "Ubuntu/Debian cloud kernels)",
            )
