"""One tc operation, as data: sent over netlink, or printed by a dry run.

Keeping the operation a value lets the dry run show exactly what the netlink
path would send (the same options object renders and encodes itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from shaping.tc.wire import handle_text

Verb = Literal["add", "change", "replace", "delete"]
Target = Literal["qdisc", "class"]


class TcOptions(Protocol):
    """Options of one qdisc or class kind."""

    @property
    def kind(self) -> str:
        """The qdisc/class kind (TCA_KIND)."""

    def encode(self) -> bytes:
        """The TCA_OPTIONS payload."""

    def render(self) -> str:
        """The same options in ``tc`` command-line syntax."""


@dataclass(frozen=True)
class TcOp:
    """A qdisc or class operation on the egress of ``ifname``."""

    verb: Verb
    target: Target
    ifname: str
    parent: int
    handle: int
    options: TcOptions | None = None  # None only for delete

    def render(self) -> str:
        parent = handle_text(self.parent)
        where = "root" if parent == "root" else f"parent {parent}"
        parts = ["tc", self.target, self.verb, "dev", self.ifname, where]
        if self.handle:
            parts += ["classid" if self.target == "class" else "handle", handle_text(self.handle)]
        if self.options is not None:
            parts += [self.options.kind, self.options.render()]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class LinkOp:
    """Interface attributes set over rtnetlink (``ip link set`` equivalent)."""

    ifname: str
    gso_max_size: int
    gso_max_segs: int

    def render(self) -> str:
        return (
            f"ip link set dev {self.ifname} gso_max_size {self.gso_max_size}"
            f" gso_max_segs {self.gso_max_segs}"
        )


class OpSink(Protocol):
    """Where operations go: the kernel, or a dry run's list."""

    def run(self, op: TcOp) -> None: ...

    def run_link(self, op: LinkOp) -> None: ...
