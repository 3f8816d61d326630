"""The flow kinds, one module each; a new kind is a module and a line here.

:mod:`netlab.run.kinds.base` says what a kind declares. The scenario's
``flows[].kind`` accepts exactly the names registered below.
"""

from __future__ import annotations

from netlab.run.kinds import command, probe, rtc, tcp
from netlab.run.kinds.base import FlowKind

KINDS: dict[str, FlowKind] = {
    kind.name: kind for kind in (probe.KIND, rtc.KIND, tcp.KIND, command.KIND)
}


def kind_of(name: str) -> FlowKind:
    """The registered kind ``name`` (the validator only lets these through)."""
    return KINDS[name]
