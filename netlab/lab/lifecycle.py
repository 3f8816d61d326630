"""Bring a lab up and down: preflight, plan, journal, build, shape.

A lab is either completely built or completely removed: any failure while
building tears down what the journal recorded and re-raises.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from netlab.errors import NetlabError
from netlab.lab import builder, netns, state
from netlab.lab.plan import LabPlan, plan_lab, plan_to_json
from netlab.lab.shaping import LinkShaping, shape_lab
from netlab.lab.teardown import TeardownReport, teardown
from netlab.paths import LOCK_FILE, lab_dir, run_root, state_path
from netlab.preflight import (
    choose_backend,
    choose_subnet,
    probe_kernel,
    raise_on_failures,
    run_preflight,
)
from netlab.scenario.model import Scenario

Backend = Literal["kernel", "user"]


@dataclass
class Lab:
    """A running lab: its plan, journal and the shaping handles of its links."""

    scenario: Scenario
    plan: LabPlan
    journal: state.StateJournal
    backend: Backend
    shaping: LinkShaping = field(default_factory=LinkShaping)

    @property
    def name(self) -> str:
        return self.plan.lab

    def down(self) -> TeardownReport:
        self.shaping.stop()
        return teardown(self.journal.state)


class LabExists(NetlabError):
    pass


@contextmanager
def _lab_lock(name: str) -> Iterator[None]:
    """Serialises concurrent ``up``s of one name for the check-then-create."""
    directory = lab_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabExists(
                f"lab '{name}' is being brought up by another netlab process",
                where=str(directory / LOCK_FILE),
                fix=f"wait for it, or run 'netlab down {name}'",
            ) from None
        yield
    finally:
        os.close(fd)


def _is_live(existing: state.LabState) -> bool:
    return state.pid_alive(existing.owner_pid) or any(
        netns.exists(ns) for ns in existing.namespaces)


def up(scenario: Scenario, *, backend: str | None = None,
       subnet: ipaddress.IPv4Network | None = None) -> Lab:
    """Build the scenario's lab; on any failure nothing is left behind."""
    caps = probe_kernel()
    raise_on_failures(run_preflight(scenario, caps, backend=backend))
    chosen: Backend = choose_backend(scenario, caps, backend)
    net = subnet or scenario.subnet or choose_subnet(scenario.name)
    plan = plan_lab(scenario, net)
    run_root().mkdir(parents=True, exist_ok=True)
    with _lab_lock(scenario.name):
        existing = state.load(scenario.name)
        if existing is not None:
            if _is_live(existing):
                raise LabExists(
                    f"a lab named '{scenario.name}' is already up "
                    f"(owner pid {existing.owner_pid}, {len(existing.namespaces)} namespaces)",
                    where=str(state_path(scenario.name)),
                    fix=f"run 'netlab down {scenario.name}' first, or rename the scenario",
                )
            teardown(existing)  # stale journal of a lab whose objects are all gone
            lab_dir(scenario.name).mkdir(parents=True, exist_ok=True)
        journal = state.StateJournal.start(
            scenario.name,
            scenario_path=str(scenario.source) if scenario.source else None,
            subnet=str(net), backend=chosen,
        )
    lab = Lab(scenario, plan, journal, chosen)
    try:
        _build(lab)
    except BaseException:
        lab.down()
        raise
    return lab


def _build(lab: Lab) -> None:
    plan, journal = lab.plan, lab.journal
    builder.create_namespaces(plan, journal)
    pool = lab.shaping.pool  # one netlink socket per namespace, kept for later changes
    if lab.backend == "kernel":
        builder.create_veths(plan, journal, pool)
    else:
        lab.shaping.create_user_links(plan, journal)
    for host in plan.hosts.values():
        builder.configure_host(host, pool)
    journal.set(plan=plan_to_json(plan))
    shape_lab(lab.shaping, plan, journal, lab.backend, probe_kernel(),
              base_dir=lab.scenario.source.parent if lab.scenario.source else None,
              seed=lab.scenario.seed)
    journal.set(status="up")


def down(name: str) -> TeardownReport:
    existing = state.load(name)
    if existing is None:
        raise NetlabError(
            f"no lab named '{name}' is up",
            where=str(state_path(name)),
            fix="'netlab status' lists the labs that are up",
        )
    return teardown(existing)
