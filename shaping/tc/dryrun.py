"""A sink that records operations instead of sending them."""

from __future__ import annotations

from shaping.tc.ops import LinkOp, TcOp


class DryRun:
    """Collects the netlink operations a shaper would send.

    ``lines()`` renders them as the equivalent ``tc`` / ``ip link`` commands,
    in order, so a user can read (or paste) what a scenario would do.
    """

    def __init__(self) -> None:
        self.ops: list[TcOp | LinkOp] = []

    def run(self, op: TcOp) -> None:
        self.ops.append(op)

    def run_link(self, op: LinkOp) -> None:
        self.ops.append(op)

    def lines(self) -> list[str]:
        return [op.render() for op in self.ops]
