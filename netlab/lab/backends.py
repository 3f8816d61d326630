"""Which backend shapes each link, and why, per direction: htb where it can be faithful.

Preflight picks the lab's backend from what the kernel has
(``netlab.preflight.choose_backend``).  On the kernel backend every traced
direction is then checked against a model of htb
(:mod:`shaping.replay.representable`): a trace htb cannot replay as Mahimahi
would (a 500 ms bin off by more than 5 %, frames delivered into a gap) is
given to the user-space link, which spends the trace's delivery
opportunities one by one.  A user-space link carries both directions of its
link, so the other direction moves with it.  Nothing is silent: every
direction gets a reason, the lab prints the choices and results.json keeps
them (``backend_choice``).  An explicit ``--backend kernel`` is obeyed, with
the check's verdict as a warning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netlab.lab.plan import Interface, LabPlan
from netlab.preflight import KernelCapabilities
from netlab.preflight.checks import Backend
from netlab.scenario.model import Scenario
from shaping.replay.representable import HtbCheck, check_htb
from shaping.traces import load_trace

_DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class DirectionChoice:
    """The backend of one link direction and the reason, in plain words."""

    link: str
    direction: str
    backend: Backend
    reason: str
    check: HtbCheck | None = None
    warning: bool = False  # the check failed but the backend was kept (asked, or no TUN)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"link": self.link, "direction": self.direction,
                               "backend": self.backend, "reason": self.reason}
        if self.check is not None:
            check = self.check
            out["htb_check"] = {
                "representable": check.representable, "seconds": check.seconds,
                "bins": check.bins, "mape": check.mape, "worst_bin_t_s": check.worst_bin_t_s,
                "worst_bin_error": check.worst_bin_error, "gaps": check.gaps,
                "leaky_gaps": [dataclasses.asdict(g) for g in check.leaky]}
        return out


@dataclass(frozen=True)
class BackendChoice:
    """The lab's backend, each link's, and every direction's reason."""

    lab: Backend
    directions: tuple[DirectionChoice, ...]

    def of_link(self, link: str) -> Backend:
        return next((d.backend for d in self.directions if d.link == link), self.lab)

    def links(self, backend: Backend, plan: LabPlan) -> list[str]:
        return [name for name in plan.links if self.of_link(name) == backend]

    def to_json(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.directions]

    def shown(self) -> list[DirectionChoice]:
        """What the lab prints: every direction htb was checked for, and every one
        moved off the lab's backend."""
        return [d for d in self.directions if d.check is not None or d.backend != self.lab]


def choice_lines(choice: BackendChoice) -> list[str]:
    """What the lab prints (rich markup): where htb was checked and what moved off it."""
    return [("[yellow]warning[/yellow]: " if shown.warning else "")
            + f"link {shown.link} ({shown.direction}): {shown.reason}"
            for shown in choice.shown()]


def uniform(plan: LabPlan, backend: Backend, reason: str) -> BackendChoice:
    """Every direction on ``backend`` for one ``reason`` (the lab's own choice)."""
    return BackendChoice(backend, tuple(DirectionChoice(name, direction, backend, reason)
                                        for name in plan.links for direction in _DIRECTIONS))


def _traced(iface: Interface, base_dir: Path | None) -> tuple[Any, Any] | None:
    if iface.egress.trace is None:
        return None
    trace = load_trace(iface.egress.trace, base_dir=base_dir)
    if iface.egress.trace_loop is not None:
        trace = dataclasses.replace(trace, loop=iface.egress.trace_loop)
    return trace, iface.egress.shape


def _fixed_reason(iface: Interface) -> str:
    shape = iface.egress.shape
    if shape.rate_bps is None and not shape.needs_netem and shape.queue is None:
        return "kernel: unshaped"
    return "kernel: a fixed shape (htb holds it exactly)"


def choose_link_backends(scenario: Scenario, plan: LabPlan, lab_backend: Backend,
                         requested: str | None, caps: KernelCapabilities) -> BackendChoice:
    """Each link's backend: the lab's, unless htb cannot replay one of its traces."""
    if lab_backend == "user":
        why = ("asked for (--backend user)" if requested == "user" else
               "the kernel lacks what the links need (netem or a rate shaper; see preflight)")
        return uniform(plan, "user", f"user-space link: {why}")
    base_dir = scenario.source.parent if scenario.source else None
    asked_kernel = requested == "kernel"
    first: dict[tuple[str, str], DirectionChoice] = {}
    for name, (end_a, end_b) in plan.links.items():
        for direction, iface in zip(_DIRECTIONS, (end_a, end_b), strict=True):
            traced = _traced(iface, base_dir)
            if traced is None:
                first[(name, direction)] = DirectionChoice(name, direction, "kernel",
                                                           _fixed_reason(iface))
                continue
            check = check_htb(traced[0], traced[1], scenario.duration_s)
            reason = check.reason()
            if check.representable:
                first[(name, direction)] = DirectionChoice(name, direction, "kernel",
                                                           f"kernel: {reason}", check)
            elif asked_kernel:
                first[(name, direction)] = DirectionChoice(
                    name, direction, "kernel", f"kernel (asked for with --backend kernel), "
                    f"although {reason}", check, warning=True)
            elif not caps.tun:
                first[(name, direction)] = DirectionChoice(
                    name, direction, "kernel", f"kernel, although {reason}; the user-space "
                    "link needs TUN devices, which this machine lacks", check, warning=True)
            else:
                first[(name, direction)] = DirectionChoice(
                    name, direction, "user", f"user-space link: {reason}", check)
    out: list[DirectionChoice] = []
    for name in plan.links:
        pair = [first[(name, d)] for d in _DIRECTIONS]
        moved = [c for c in pair if c.backend == "user"]
        for choice in pair:
            if moved and choice.backend == "kernel":
                other = moved[0].direction
                choice = dataclasses.replace(
                    choice, backend="user", warning=False,
                    reason=f"user-space link: its link's {other} direction needs it "
                           f"(one link process carries both); {choice.reason}")
            out.append(choice)
    return BackendChoice("kernel", tuple(out))
