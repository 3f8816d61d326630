"""Bring a lab up and down: preflight, plan, journal, build, shape.

A lab is either completely built or completely removed: any failure while
building tears down what the journal recorded and re-raises.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from netlab.errors import NetlabError
from netlab.lab import builder, state
from netlab.lab.backends import BackendChoice, choose_link_backends, uniform
from netlab.lab.ownership import DOWN_SIGNAL
from netlab.lab.plan import LabPlan, plan_lab, plan_to_json
from netlab.lab.shaping import LinkShaping, shape_lab
from netlab.lab.teardown import (
    TeardownReport,
    own_namespace_inodes,
    signals_deferred,
    teardown,
)
from netlab.paths import lab_dir, run_root, state_path
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
    #: Each link's backend and why (htb where it can replay the traces faithfully).
    choice: BackendChoice | None = None

    def __post_init__(self) -> None:
        if self.choice is None:
            self.choice = uniform(self.plan, self.backend, f"{self.backend}: the lab's backend")

    @property
    def backends(self) -> BackendChoice:
        assert self.choice is not None
        return self.choice

    @property
    def name(self) -> str:
        return self.plan.lab

    @property
    def instance(self) -> str:
        return self.journal.state.instance

    def down(self) -> TeardownReport:
        """Remove this instance, and only it (see ``down_instance``), with
        signals held until it is done."""
        with signals_deferred():
            self.shaping.stop()
            return down_instance(self.name, self.instance, self.journal.state)


class LabExists(NetlabError):
    pass


LOCK_WAIT_S = 30.0  # a concurrent up or down of the same lab finishes well within this
OWNER_WAIT_S = 60.0  # a foreground up writes results and removes its lab within this
_SUBNET_LOCK = ".subnets"  # not a lab name: lab names start with a letter


@contextmanager
def lab_lock(name: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Serialises ``up`` (preflight to journal) and ``down`` of one lab name.

    The lock files live in ``<run root>/.locks``, never removed, so a lock
    taken while another process deletes the lab's directory still counts.
    """
    directory = run_root() / ".locks"
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LabExists(
                        f"lab '{name}' is being brought up or down by another netlab "
                        f"process (waited {wait_s:.0f} s)",
                        where=str(directory / name),
                        fix="wait for it to finish; 'netlab status' shows the lab",
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _is_live(existing: state.LabState) -> bool:
    return existing.owner_alive() or bool(own_namespace_inodes(existing))


def up(scenario: Scenario, *, backend: str | None = None,
       subnet: ipaddress.IPv4Network | None = None, owner_handles_down: bool = False) -> Lab:
    """Build the scenario's lab; on any failure nothing is left behind.

    Preflight, the address choice and the journal's start run under the
    lab's lock (and one for address choices), so two concurrent ``up``s can
    not both pass the checks for one name or one range.
    """
    run_root().mkdir(parents=True, exist_ok=True)
    with lab_lock(scenario.name), lab_lock(_SUBNET_LOCK):
        caps = probe_kernel()
        raise_on_failures(run_preflight(scenario, caps, backend=backend, subnet=subnet))
        chosen: Backend = choose_backend(scenario, caps, backend)
        net = subnet or scenario.subnet or choose_subnet(scenario.name)
        plan = plan_lab(scenario, net)
        existing = state.load(scenario.name)
        if existing is not None:
            if _is_live(existing):  # preflight refused it already; kept as a last guard
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
            subnet=str(net), backend=chosen, owner_handles_down=owner_handles_down,
        )
    lab = Lab(scenario, plan, journal, chosen,
              choice=choose_link_backends(scenario, plan, chosen, backend, caps))
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
    builder.create_veths(plan, journal, pool, lab.backends.links("kernel", plan))
    lab.shaping.create_user_links(plan, journal, lab.backends.links("user", plan))
    builder.identify_links(plan, journal, pool)
    for host in plan.hosts.values():
        builder.configure_host(host, pool)
    journal.set(plan=plan_to_json(plan))
    shape_lab(lab.shaping, plan, journal, lab.backends, probe_kernel(),
              base_dir=lab.scenario.source.parent if lab.scenario.source else None,
              seed=lab.scenario.seed)
    journal.set(status="up")


def down_instance(name: str, instance: str, journaled: state.LabState) -> TeardownReport:
    """Remove instance ``instance`` of lab ``name`` if it is still the one up:
    a lab taken down meanwhile, or replaced by a new one of the same name,
    is left alone."""
    with lab_lock(name):
        try:
            current = state.load(name)
        except state.StateGarbled:
            current = None
        if current is None or current.instance != instance:
            replaced = current is not None
            return TeardownReport(gone=(
                f"lab {name} was taken down by another netlab process"
                + ("; the lab now up under that name is a new one, left untouched"
                   if replaced else "")))
        for obj in journaled.objects:  # what this process journaled but the file lost
            if obj not in current.objects:
                current.objects.append(obj)
        return teardown(current)


def _unjournaled_dir(name: str) -> bool:
    """A lab directory an ``up`` killed before its journal began leaves: no
    state file and no journaled object, so it made nothing in the kernel."""
    directory = lab_dir(name)
    return directory.is_dir() and not state.objects_path(name).exists()


def _load(name: str) -> state.LabState:
    existing = state.load(name)
    if existing is None:
        raise NetlabError(
            f"no lab named '{name}' is up",
            where=str(state_path(name)),
            fix="'netlab status' lists the labs that are up",
        )
    return existing


def down(name: str, *, owner_wait_s: float = OWNER_WAIT_S,
         waiting: Callable[[int], None] | None = None) -> TeardownReport:
    """Tear lab ``name`` down under its lock.

    A foreground ``up`` that still runs it is asked to end (see
    ``ownership``): it writes its results and removes its own instance;
    ``down`` removes whatever is left if it does not finish within
    ``owner_wait_s``.  ``waiting(pid)`` is called before that wait.
    """
    with lab_lock(name):
        if state.load(name) is None and _unjournaled_dir(name):
            shutil.rmtree(lab_dir(name), ignore_errors=True)
            return TeardownReport(removed=[f"run dir {lab_dir(name)} (stopped before its "
                                           "journal began: nothing else was made)"])
        existing = _load(name)
        if not (existing.owner_handles_down and existing.owner_pid != os.getpid()
                and existing.owner_alive()):
            return teardown(existing)
    if waiting is not None:
        waiting(existing.owner_pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(existing.owner_pid, DOWN_SIGNAL)
    deadline = time.monotonic() + owner_wait_s
    while existing.owner_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    with lab_lock(name):
        current = state.load(name)
        if current is None or current.instance != existing.instance:
            return TeardownReport(gone=f"removed by its foreground netlab up "
                                       f"(pid {existing.owner_pid})")
        return teardown(current)
