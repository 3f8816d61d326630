"""Preflight checks: can this machine run this scenario, and if not, why and what to do.

Each check returns ProbeResults rather than raising, so ``netlab doctor``
can show every row and ``netlab up`` can report every problem at once
(``raise_on_failures``) before it creates anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import socket
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Literal

from netlab import paths
from netlab.errors import NetlabError
from netlab.lab import state as lab_state
from netlab.lab.plan import namespace_name
from netlab.preflight import addresses
from netlab.preflight.capabilities import (
    NETNS_DIR,
    PROBED_LINK_KINDS,
    PROBED_QDISCS,
    KernelCapabilities,
    can_admin_network,
    can_enter_namespaces,
    effective_capabilities,
    tcp_congestion_controls,
)
from netlab.scenario.model import Direction, Scenario
from shaping.spec import LinkShape
from shaping.traces import load_trace

Severity = Literal["error", "warning", "info"]
Backend = Literal["kernel", "user"]

FIX_ROOT = "run it as root: `sudo netlab ...` (or grant CAP_NET_ADMIN and CAP_SYS_ADMIN)"
FIX_NETEM = (
    "use `--backend user` (the user-space link emulates delay, jitter and loss), "
    "or load netem: `modprobe sch_netem`"
)
FIX_TUN = (
    "load the TUN driver: `modprobe tun` (and if /dev/net/tun is missing: "
    "`mkdir -p /dev/net && mknod /dev/net/tun c 10 200`)"
)
FIX_RATE = "load a rate shaper: `modprobe sch_htb` (or sch_tbf), or use `--backend user`"


@dataclass(frozen=True)
class ProbeResult:
    """One row of the preflight table.

    ``ok`` says whether the probe passed; ``severity`` says how much a
    failed probe matters: only a failed ``error`` stops a lab.
    """

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    severity: Severity = "error"
    where: str | None = None

    @property
    def failed(self) -> bool:
        return not self.ok and self.severity == "error"


class PreflightError(NetlabError):
    """Every failed preflight probe at once, each with what, where and fix."""

    def __init__(self, failures: list[ProbeResult]) -> None:
        count = len(failures)
        super().__init__(
            f"preflight found {count} problem{'s' if count != 1 else ''}; nothing was created",
            where=failures[0].where if count == 1 else None,
            fix=failures[0].fix if count == 1 else None,
        )
        self.failures = failures

    def render(self) -> str:
        lines = [f"error: {self.what}"]
        for failure in self.failures:
            lines.append(f"  - {failure.name}: {failure.detail}")
            if failure.where:
                lines.append(f"    where: {failure.where}")
            if failure.fix:
                lines.append(f"    fix: {failure.fix}")
        return "\n".join(lines)


def raise_on_failures(results: list[ProbeResult]) -> None:
    failures = [result for result in results if result.failed]
    if failures:
        raise PreflightError(failures)


def _where(scenario: Scenario, field_path: str) -> str:
    return f"{scenario.source or scenario.name}: {field_path}"


# --------------------------------------------------------------------- privileges


def _capeff_text() -> str:
    mask = effective_capabilities()
    return "unreadable" if mask is None else f"{mask:016x}"


def check_privileges() -> list[ProbeResult]:
    """CAP_NET_ADMIN to configure links and qdiscs, CAP_SYS_ADMIN to make and enter namespaces."""
    results = []
    if can_admin_network():
        results.append(ProbeResult("privileges", True, "CAP_NET_ADMIN: may configure networks"))
    else:
        results.append(
            ProbeResult(
                "privileges",
                False,
                f"no CAP_NET_ADMIN (euid {os.geteuid()}, CapEff {_capeff_text()}): "
                "cannot create links or qdiscs",
                fix=FIX_ROOT,
            )
        )
    if can_enter_namespaces():
        results.append(ProbeResult("setns", True, "CAP_SYS_ADMIN: may create and enter namespaces"))
    else:
        results.append(
            ProbeResult(
                "setns",
                False,
                f"no CAP_SYS_ADMIN (euid {os.geteuid()}, CapEff {_capeff_text()}): "
                "cannot create or enter network namespaces",
                fix=FIX_ROOT,
            )
        )
    return results


# --------------------------------------------------------------------- kernel (machine-wide)


def _qdisc_row(caps: KernelCapabilities, kind: str) -> ProbeResult:
    present = caps.has_qdisc(kind)
    note = caps.notes.get(f"qdisc {kind}", "not accepted by the kernel")
    if kind == "netem":
        if present:
            return ProbeResult(
                "qdisc netem", True, "available: kernel backend can add delay, jitter, loss"
            )
        if caps.tun:
            return ProbeResult(
                "qdisc netem",
                False,
                f"missing ({note}): links with delay/jitter/loss will use the user-space link",
                fix="`modprobe sch_netem` to use the kernel backend for them",
                severity="warning",
            )
        return ProbeResult(
            "qdisc netem",
            False,
            f"missing ({note}) and no TUN for the user-space link: delay, jitter and loss "
            "cannot be emulated",
            fix=f"`modprobe sch_netem`, or {FIX_TUN}",
        )
    if kind in ("htb", "tbf"):
        other = "tbf" if kind == "htb" else "htb"
        if present:
            return ProbeResult(f"qdisc {kind}", True, "available: rate shaping")
        return ProbeResult(
            f"qdisc {kind}",
            False,
            f"missing ({note})",
            fix=f"`modprobe sch_{kind}`",
            severity="warning" if caps.has_qdisc(other) else "error",
        )
    return ProbeResult(
        f"qdisc {kind}",
        present,
        "available" if present else f"missing ({note}); not needed by netlab",
        severity="info",
    )


def _link_row(caps: KernelCapabilities, kind: str) -> ProbeResult:
    present = caps.has_link_kind(kind)
    note = caps.notes.get(f"link {kind}", "not accepted by the kernel")
    if kind == "veth":
        return ProbeResult(
            "link veth",
            present,
            "available: links between namespaces" if present else f"missing ({note})",
            fix=None if present else "`modprobe veth`",
        )
    return ProbeResult(
        f"link {kind}",
        present,
        "available" if present else f"missing ({note}); not needed by netlab",
        severity="info",
    )


def _tun_row(caps: KernelCapabilities) -> ProbeResult:
    if caps.tun:
        return ProbeResult("tun", True, "available: user-space link backend can run")
    note = caps.notes.get("tun", "not probed")
    return ProbeResult(
        "tun",
        False,
        f"unavailable ({note}): no user-space link backend",
        fix=FIX_TUN,
        severity="warning" if caps.netem else "error",
    )


def _tcp_row(caps: KernelCapabilities) -> ProbeResult:
    available = " ".join(caps.tcp_cc_available) or "none"
    allowed = " ".join(caps.tcp_cc_allowed) or "none"
    detail = (
        f"available: {available}; default: {caps.tcp_cc_default}; allowed without privileges: "
        f"{allowed} (root may set any available one per socket, and the kernel loads "
        "tcp_<name> modules for it)"
    )
    ok = bool(caps.tcp_cc_available)
    return ProbeResult("tcp congestion control", ok, detail, severity="info")


def check_kernel(caps: KernelCapabilities) -> list[ProbeResult]:
    """One row per probed kernel feature (what ``netlab doctor`` shows)."""
    if not caps.probed:
        return [
            ProbeResult(
                "kernel probe",
                False,
                f"could not probe the kernel: {caps.probe_error}",
                fix=FIX_ROOT,
            ),
            _tcp_row(caps),
        ]
    rows = [_qdisc_row(caps, kind) for kind in PROBED_QDISCS]
    rows.extend(_link_row(caps, kind) for kind in PROBED_LINK_KINDS)
    rows.append(_tun_row(caps))
    rows.append(_tcp_row(caps))
    return rows


def check_tools() -> list[ProbeResult]:
    found = shutil.which("iperf3")
    if found:
        return [ProbeResult("iperf3", True, f"found at {found} (optional)", severity="info")]
    return [
        ProbeResult(
            "iperf3",
            False,
            "not found (optional: only for ad-hoc `netlab exec` tests)",
            fix="`apt-get install iperf3`",
            severity="warning",
        )
    ]


def check_address_pool(prefix: int = 16) -> ProbeResult:
    """How many automatic lab ranges are free right now."""
    taken = [m.network for m in addresses.machine_networks()]
    taken.extend(addresses.other_lab_subnets().values())
    total = free = 0
    for pool in addresses.SUBNET_POOLS:
        for block in pool.subnets(new_prefix=prefix):
            total += 1
            free += not any(block.overlaps(used) for used in taken)
    pools = ", ".join(str(p) for p in addresses.SUBNET_POOLS)
    return ProbeResult(
        "address pool",
        free > 0,
        f"{free} of {total} /{prefix} blocks in {pools} are free of routes, addresses and labs",
        fix=None if free else "set `subnet:` in scenarios to a free range",
        severity="warning",
    )


def machine_report(caps: KernelCapabilities) -> list[ProbeResult]:
    """Everything ``netlab doctor`` shows; the machine can run labs if none failed."""
    results = check_privileges()
    results.extend(check_kernel(caps))
    results.extend(check_tools())
    results.append(check_address_pool())
    return results


# --------------------------------------------------------------------- scenario checks


def check_lab_not_up(scenario: Scenario) -> list[ProbeResult]:
    """A lab of this name is up if its state file's owner lives or its namespaces exist.

    The hosts' namespaces (``nl-<lab>.<host>``) are checked even without a
    state file: ``up`` could not create them anyway.  ``up`` runs this under
    the lab's lock, so no other ``up`` of the name can pass it meanwhile.
    """
    name = scenario.name
    path = paths.state_path(name)
    fix = f"`netlab down {name}`"
    try:
        state = lab_state.load(name)
    except lab_state.StateGarbled as exc:
        return [ProbeResult("lab name", False, exc.what, fix=exc.fix, where=exc.where)]
    reasons: list[str] = []
    if state is not None:
        if state.owner_alive():
            reasons.append(f"owner pid {state.owner_pid} is alive")
        alive = [ns for ns in state.namespaces if (NETNS_DIR / ns).exists()]
        if alive:
            reasons.append(f"namespaces {', '.join(alive)} exist")
    if reasons:
        return [
            ProbeResult(
                "lab name",
                False,
                f"a lab named '{name}' is already up: {'; '.join(reasons)}",
                fix=fix,
                where=str(path),
            )
        ]
    expected = [namespace_name(name, host.name) for host in scenario.hosts]
    leftovers = [ns for ns in expected if (NETNS_DIR / ns).exists()]
    if leftovers:
        return [_leftover_namespace(leftovers[0], len(leftovers))]
    if state is not None:
        return [
            ProbeResult(
                "lab name",
                False,
                f"stale state file of a lab '{name}' that is no longer running; `up` replaces it",
                fix=f"{fix} to remove it now",
                where=str(path),
                severity="warning",
            )
        ]
    return [ProbeResult("lab name", True, f"no lab named '{name}' is up")]


def _leftover_namespace(namespace: str, count: int) -> ProbeResult:
    """A host namespace that exists although this lab is not up: name the lab
    whose journal holds it, if any, and the fix that really removes it."""
    more = f" (and {count - 1} more of this lab's host namespaces)" if count > 1 else ""
    for other in lab_state.all_labs():
        if namespace in other.namespaces:
            return ProbeResult(
                "lab name", False,
                f"namespace {namespace}{more} already exists and belongs to lab '{other.lab}'",
                fix=f"`netlab down {other.lab}`", where=str(paths.state_path(other.lab)))
    return ProbeResult(
        "lab name", False,
        f"namespace {namespace}{more} already exists and no lab's journal records it "
        "(netlab did not make it, or its state was removed)",
        fix=f"check what uses it (`ip netns pids {namespace}`), then `ip netns del {namespace}`",
        where=str(NETNS_DIR / namespace))


def check_addresses(scenario: Scenario, given: IPv4Network | None = None) -> list[ProbeResult]:
    if given is None and scenario.subnet is None:
        try:
            chosen = addresses.choose_subnet(scenario.name)
        except NetlabError as exc:
            return [ProbeResult("address range", False, exc.what, fix=exc.fix, where=exc.where)]
        return [
            ProbeResult(
                "address range",
                True,
                f"{chosen} (chosen: free of this machine's routes and other labs)",
                severity="info",
            )
        ]
    subnet = given or scenario.subnet
    assert subnet is not None
    where = "--subnet" if given is not None else _where(scenario, "subnet")
    drop = "leave --subnet out" if given is not None else "remove `subnet:`"
    collisions = addresses.address_collisions(subnet)
    if collisions:
        suggestion = ""
        with contextlib.suppress(NetlabError):
            suggestion = f" such as {addresses.choose_subnet(scenario.name)}"
        return [
            ProbeResult(
                "address range",
                False,
                f"subnet {subnet} overlaps this machine's {'; '.join(collisions)}",
                fix=f"pick a free range{suggestion}, or {drop} to let netlab choose one",
                where=where,
            )
        ]
    shared = [
        f"{lab} ({net})"
        for lab, net in addresses.other_lab_subnets(exclude=scenario.name).items()
        if net.overlaps(subnet)
    ]
    if shared:
        return [
            ProbeResult(
                "address range",
                False,
                f"subnet {subnet} overlaps lab {', '.join(shared)}; labs are isolated, "
                "but captures and logs become ambiguous",
                fix=f"pick another range, or {drop} to let netlab choose one",
                where=where,
                severity="warning",
            )
        ]
    return [ProbeResult("address range", True, f"{subnet} is free")]


_NETEM_FIELDS = (("delay", "delay_s"), ("jitter", "jitter_s"), ("loss", "loss"))


def _netem_fields(shape: LinkShape) -> list[str]:
    return [name for name, attr in _NETEM_FIELDS if getattr(shape, attr) > 0]


@functools.lru_cache(maxsize=64)
def _trace_extras(ref: str, base_dir: Path | None) -> tuple[float, float, float]:
    """The largest delay, jitter and loss a trace asks for (OpenNetLab and
    Genet traces carry them), which need netem like the scenario's own."""
    trace = load_trace(ref, base_dir=base_dir)
    return (max(trace.delays_s or (0.0,)), max(trace.jitters_s or (0.0,)),
            max(trace.losses or (0.0,)))


def _with_trace(direction: Direction, base_dir: Path | None) -> LinkShape:
    shape = direction.shape
    if direction.trace is None:
        return shape
    delay, jitter, loss = _trace_extras(direction.trace, base_dir)
    return dataclasses.replace(shape, delay_s=max(shape.delay_s, delay),
                               jitter_s=max(shape.jitter_s, jitter), loss=max(shape.loss, loss))


def _shapes(scenario: Scenario) -> list[tuple[str, str, LinkShape]]:
    """(field path, link name, shape) for every link direction, with what its
    trace asks for folded in."""
    base_dir = scenario.source.parent if scenario.source else None
    found = []
    for i, link in enumerate(scenario.links):
        found.append((f"links[{i}].up", link.name, _with_trace(link.up, base_dir)))
        found.append((f"links[{i}].down", link.name, _with_trace(link.down, base_dir)))
    return found


def needs_netem(scenario: Scenario) -> bool:
    return any(shape.needs_netem for _, _, shape in _shapes(scenario))


def needs_rate(scenario: Scenario) -> bool:
    return any(
        shape.rate_bps is not None or link.up.trace or link.down.trace
        for link in scenario.links
        for shape in (link.up.shape, link.down.shape)
    )


def choose_backend(
    scenario: Scenario, caps: KernelCapabilities, requested: str | None
) -> Backend:
    """The link backend to build with.

    An explicit ``kernel``/``user`` is obeyed (``run_preflight`` reports
    what it lacks).  ``auto``/None picks the user-space link when the
    scenario needs something the kernel lacks: netem for delay, jitter or
    loss, or htb/tbf for rate; otherwise the kernel backend.
    """
    if requested == "kernel":
        return "kernel"
    if requested == "user":
        return "user"
    if requested not in (None, "auto"):
        raise NetlabError(
            f"unknown backend {requested!r}",
            where=_where(scenario, "backend"),
            fix="use one of: auto, kernel, user",
        )
    if needs_netem(scenario) and not caps.netem:
        return "user"
    if needs_rate(scenario) and not caps.rate_shaper:
        return "user"
    return "kernel"


def _describe(field: str, shape: LinkShape) -> str:
    if field == "delay":
        return f"delay {shape.delay_s * 1e3:g} ms"
    if field == "jitter":
        return f"jitter {shape.jitter_s * 1e3:g} ms"
    return f"loss {shape.loss * 100:g}%"


def check_backend(
    scenario: Scenario, caps: KernelCapabilities, requested: str | None
) -> list[ProbeResult]:
    try:
        chosen = choose_backend(scenario, caps, requested)
    except NetlabError as exc:
        return [ProbeResult("backend", False, exc.what, fix=exc.fix, where=exc.where)]
    explicit = requested in ("kernel", "user")
    results: list[ProbeResult] = []
    if chosen == "kernel":
        if not caps.has_link_kind("veth"):
            results.append(
                ProbeResult(
                    "link veth",
                    False,
                    "the kernel backend joins hosts with veth pairs, and this kernel has none",
                    fix="`modprobe veth`, or use `--backend user`",
                    where=_where(scenario, "links"),
                )
            )
        if needs_rate(scenario) and not caps.rate_shaper:
            results.append(
                ProbeResult(
                    "rate shaper",
                    False,
                    "this kernel has neither the htb nor the tbf qdisc, which the kernel backend "
                    "shapes rate with",
                    fix=FIX_RATE,
                    where=_where(scenario, "links"),
                )
            )
        if not caps.netem:
            for path, link_name, shape in _shapes(scenario):
                fields = _netem_fields(shape)
                if not fields:
                    continue
                asked = ", ".join(_describe(f, shape) for f in fields)
                results.append(
                    ProbeResult(
                        "qdisc netem",
                        False,
                        f"link {link_name} ({path.split('.')[0]}) asks for {asked} on "
                        f"'{path.split('.')[1]}'; the kernel backend needs netem for that and "
                        "this kernel has no netem qdisc",
                        fix=FIX_NETEM,
                        where=_where(scenario, f"{path}.{fields[0]}"),
                    )
                )
        if not results:
            how = "explicitly requested" if explicit else "the kernel has what the links need"
            results.append(
                ProbeResult("backend", True, f"kernel (tc qdiscs): {how}", severity="info")
            )
        return results
    # user-space link backend
    if not caps.tun:
        note = caps.notes.get("tun", "not probed")
        results.append(
            ProbeResult(
                "tun",
                False,
                f"the user-space link backend needs TUN devices, which are unavailable ({note})",
                fix=FIX_TUN,
                where=_where(scenario, "links") if explicit else None,
            )
        )
        return results
    if explicit:
        why = "explicitly requested"
    elif needs_netem(scenario) and not caps.netem:
        why = "the kernel has no netem for the links' delay, jitter or loss"
    else:
        why = "the kernel has neither htb nor tbf for the links' rates"
    detail = f"user-space link backend will be used: {why}"
    results.append(ProbeResult("backend", True, detail, severity="info"))
    return results


def cc_settable(name: str) -> bool:
    """Ask the kernel: can a socket use ``name``?  As root this loads ``tcp_<name>``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, name.encode())
        except OSError:
            return False
    return True


def check_tcp_cc(scenario: Scenario, caps: KernelCapabilities) -> list[ProbeResult]:
    results: list[ProbeResult] = []
    available = caps.tcp_cc_available
    for i, flow in enumerate(scenario.flows):
        cc = flow.options.get("cc")
        if flow.kind != "tcp" or cc is None:
            continue
        cc = str(cc)
        where = _where(scenario, f"flows[{i}].cc")
        if cc not in available and not cc_settable(cc):
            listed = ", ".join(available) or "none"
            results.append(
                ProbeResult(
                    "tcp congestion control",
                    False,
                    f"flow {flow.id}: TCP congestion control '{cc}' is not available in this "
                    f"kernel (available: {listed})",
                    fix=f"`modprobe tcp_{cc}`, or pick one of: {listed}",
                    where=where,
                )
            )
        elif cc not in available:
            refreshed = " ".join(tcp_congestion_controls()[0])
            results.append(
                ProbeResult(
                    "tcp congestion control",
                    True,
                    f"flow {flow.id}: '{cc}' was loaded on demand (now available: {refreshed})",
                    severity="info",
                )
            )
        elif cc not in caps.tcp_cc_allowed and not can_admin_network():
            results.append(
                ProbeResult(
                    "tcp congestion control",
                    False,
                    f"flow {flow.id}: '{cc}' is available but not in "
                    "net.ipv4.tcp_allowed_congestion_control, and only CAP_NET_ADMIN may use it",
                    fix=f"run as root, or `sysctl -w net.ipv4.tcp_allowed_congestion_control="
                    f"\"{' '.join((*caps.tcp_cc_allowed, cc))}\"`",
                    where=where,
                )
            )
    return results


def run_preflight(
    scenario: Scenario, caps: KernelCapabilities, *, backend: str | None = None,
    subnet: IPv4Network | None = None,
) -> list[ProbeResult]:
    """Every check for ``scenario`` on this machine; nothing is changed.

    ``subnet`` (``--subnet``) replaces the scenario's and is checked the same way.
    """
    results = check_privileges()
    if not caps.probed:
        results.extend(check_kernel(caps)[:1])
    results.extend(check_lab_not_up(scenario))
    results.extend(check_addresses(scenario, subnet))
    results.extend(check_backend(scenario, caps, backend))
    results.extend(check_tcp_cc(scenario, caps))
    return results

