"""Applies each link direction's shape with the backend preflight chose.

Kernel backend: a tc shaper on the egress of every link end.  User
backend: one link process per link moving packets between the two ends.
The handles stay open for the lab's lifetime so shapes can change in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from netlab.lab.backends import BackendChoice
from netlab.lab.builder import NetlinkPool
from netlab.lab.plan import Interface, LabPlan
from netlab.lab.state import StateJournal
from netlab.preflight import KernelCapabilities
from netlab.scenario.model import Direction
from shaping.spec import LinkShape
from shaping.traces import load_trace

Backend = Literal["kernel", "user"]
UNSHAPED = LinkShape()


@dataclass
class LinkShaping:
    """Live shaping handles of a lab, keyed by (host, interface) or link."""

    pool: NetlinkPool = field(default_factory=NetlinkPool)
    shapers: dict[tuple[str, str], object] = field(default_factory=dict)
    user_links: dict[str, Any] = field(default_factory=dict)
    user_links_seen: dict[str, Any] = field(default_factory=dict)  # kept after stop, for logs

    def create_user_links(self, plan: LabPlan, journal: StateJournal, links: list[str]) -> None:
        """TUN pairs for ``links`` (those the user-space link carries)."""
        from shaping.userlink import create_link_interfaces

        for name, (end_a, end_b) in plan.links.items():
            if name not in links:
                continue
            create_link_interfaces(
                name, plan.hosts[end_a.host].namespace, end_a.name,
                plan.hosts[end_b.host].namespace, end_b.name,
                record=lambda kind, obj, ns: journal.record(kind, obj, ns),  # type: ignore[arg-type]
            )

    def logged_links(self) -> dict[str, Any]:
        """The user-space links whose logs still exist (``netlab down`` from
        another process removes them with the lab)."""
        return {name: handle for name, handle in self.user_links_seen.items()
                if all(path.exists() for key, path in handle.log_paths().items()
                       if key != "stderr")}

    def release(self) -> None:
        """Close this process's handles; the shaping itself stays in place."""
        self.shapers.clear()
        self.pool.close()

    def stop(self) -> None:
        for handle in self.user_links.values():
            handle.stop()
        self.user_links.clear()
        self.shapers.clear()
        self.pool.close()


def _needs_single_segments(interfaces: list[Interface]) -> bool:
    """A shaped direction below the multi-segment rate (or replaying a trace)
    must only ever see one-frame packets, wherever they were built."""
    from shaping.tc.offload import MULTI_SEGMENT_RATE_BPS

    return any(
        i.egress.trace is not None
        or (i.egress.shape.rate_bps is not None
            and i.egress.shape.rate_bps < MULTI_SEGMENT_RATE_BPS)
        for i in interfaces)


def _shape_with_tc(plan: LabPlan, links: list[str], *, netem: bool,
                   ipr_of: Callable[[str], Any],
                   dry_lines: list[str] | None = None) -> dict[tuple[str, str], Any]:
    """An htb shaper on every direction that asks for something.

    The shaper limits GSO on its own interface, but on a multi-hop path the
    64 kB GSO packets are built by the *sending host's* interface and
    forwarded whole, so every other lab interface gets the same limit:
    otherwise a byte-limited leaf drops them whole (the BBR stall).
    With ``dry_lines`` nothing is sent; the equivalent commands are appended.
    """
    from shaping.tc import DryRun, limit_offloads, make_shaper
    from shaping.tc.offload import shaped_offloads

    interfaces = [i for i in plan.interfaces() if i.link in links]  # veths; TUNs never GSO
    single = _needs_single_segments(interfaces)
    shapers: dict[tuple[str, str], Any] = {}
    for iface in interfaces:
        namespace = plan.hosts[iface.host].namespace
        sink = DryRun() if dry_lines is not None else None
        ipr = ipr_of(namespace) if sink is None else None
        if iface.egress.shape == UNSHAPED and iface.egress.trace is None:
            if single and sink is not None:
                sink.run_link(shaped_offloads(iface.name, 1))
            elif single:
                limit_offloads(ipr, iface.name, segments=1)
        else:
            shaper = make_shaper("htb", ipr, iface.name, netem=netem, dry_run=sink)
            shaper.apply(iface.egress.shape)
            shapers[(iface.host, iface.name)] = shaper
        if sink is not None and dry_lines is not None:
            dry_lines.extend(_in_namespace(line, namespace) for line in sink.lines())
    return shapers


def _in_namespace(command: str, namespace: str) -> str:
    tool, _, rest = command.partition(" ")
    return f"{tool} -n {namespace} {rest}"


def describe_shaping(plan: LabPlan, choice: BackendChoice, caps: KernelCapabilities
                     ) -> list[str]:
    """What shaping would do, as commands, without touching the kernel."""
    lines: list[str] = []
    kernel = choice.links("kernel", plan)
    if kernel:
        _shape_with_tc(plan, kernel, netem=caps.has_qdisc("netem"), ipr_of=lambda ns: None,
                       dry_lines=lines)
    return lines + [f"user-space link {name}: {plan.hosts[a.host].namespace}/{a.name} <-> "
                    f"{plan.hosts[b.host].namespace}/{b.name}"
                    for name, (a, b) in plan.links.items() if choice.of_link(name) == "user"]


def user_direction(direction: Direction, base_dir: Path | None, seed: int) -> Any:
    """The user-space link's config for one direction of the scenario."""
    from shaping.userlink import DirectionConfig
    from shaping.userlink.config import traced_direction

    if direction.trace is None:
        return DirectionConfig(shape=direction.shape, seed=seed)
    return traced_direction(load_trace(direction.trace, base_dir=base_dir), direction.shape,
                            seed=seed, loop=direction.trace_loop)


def lab_logs(journal: StateJournal) -> Path:
    """This lab instance's log folder (on disk, see ``netlab.paths``): one per
    instance, so a later lab of the same name never shares it; the lab's
    folder is journaled before it is made so ``down`` removes it."""
    from netlab import paths

    folder = paths.lab_log_dir(journal.state.lab)
    if folder != journal.path.parent and not any(
            o.kind == "dir" and o.name == str(folder) for o in journal.state.objects):
        journal.record("dir", str(folder))
    directory = folder / journal.state.instance
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def shape_lab(shaping: LinkShaping, plan: LabPlan, journal: StateJournal,
              choice: BackendChoice, caps: KernelCapabilities, *,
              base_dir: Path | None = None, seed: int = 0) -> None:
    """tc on the kernel links, a link process on each user-space link (``choice``)."""
    kernel = choice.links("kernel", plan)
    if kernel:
        shaping.shapers.update(_shape_with_tc(plan, kernel, netem=caps.has_qdisc("netem"),
                                              ipr_of=shaping.pool.get))
    if len(kernel) == len(plan.links):
        return
    from shaping.userlink import UserLinkSpec, start_link

    # One trace clock for every link before the run's zero restarts them all.
    epoch = time.monotonic_ns()
    for index, (name, (end_a, end_b)) in enumerate(plan.links.items()):
        if choice.of_link(name) != "user":
            continue
        spec = UserLinkSpec(
            link_id=name,
            ns_a=plan.hosts[end_a.host].namespace, if_a=end_a.name,
            ns_b=plan.hosts[end_b.host].namespace, if_b=end_b.name,
            a_to_b=user_direction(end_a.egress, base_dir, seed * 1000 + 2 * index),
            b_to_a=user_direction(end_b.egress, base_dir, seed * 1000 + 2 * index + 1),
            run_dir=lab_logs(journal) / "links" / name,
            start_ns=epoch,
        )
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        handle = start_link(spec)
        journal.record("process", str(handle.pid),
                       pid_start=psutil.Process(handle.pid).create_time())
        shaping.user_links[name] = handle
        shaping.user_links_seen[name] = handle
