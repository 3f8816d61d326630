"""``netlab vagrant``: bring a scenario's VMs up, run it there, gather, tear down.

Orchestration is plain SSH (``vagrant ssh-config`` gives the addresses and
per-VM keys): one SSH session per VM per run carries the node's line
protocol (see :mod:`netlab.vagrant.node`), and ``tar`` over SSH brings the
logs back.  Every command runs on a thread that entered the namespace
libvirtd lives in (:mod:`netlab.vagrant.infra`), so vagrant, ssh and the clock
exchanges reach the VMs and nothing else.  docs/vagrant.md says why SSH and
not a node daemon.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from netlab import paths
from netlab.errors import NetlabError
from netlab.lab import netns
from netlab.lab.plan import LabPlan, plan_from_json, plan_lab, plan_to_json
from netlab.lab.replay import direction_schedule, shaped_directions
from netlab.lab.shaping import UNSHAPED
from netlab.run.collect import fairness_by_link, flow_results
from netlab.run.fidelity import collect as collect_fidelity
from netlab.run.flows import RECEIVER_HEAD_START_S, FlowProcesses, flow_commands
from netlab.run.kinds import kind_of
from netlab.run.plots import plot_run
from netlab.run.results import build_results, new_run_dir, write_results
from netlab.scenario.model import Scenario
from netlab.vagrant import clock, hostload, infra, logclock, vcpus
from netlab.vagrant.topology import (
    DEFAULT_BOX,
    DEFAULT_CPUS,
    DEFAULT_MAX_VMS,
    DEFAULT_MEMORY_MB,
    VmTopology,
    build_topology,
    endpoint_hosts,
    fold_routers,
    guest_routes,
)
from shaping.fidelity.machine import MachineSnapshot
from shaping.replay.log import read_replay_log
from shaping.replay.process import _shape_to_json as shape_to_json
from shaping.replay.process import schedule_to_json

VM_PYTHON = "/opt/netlab/venv/bin/python"
VM_RUN_ROOT = "/var/tmp/netlab-run"
WHEELS = ("numpy", "pyroute2", "setuptools", "wheel")
#: Lead before the shared start: under QEMU TCG a replayer takes seconds to
#: import numpy and pyroute2 and install its shaper.
START_LEAD_S = 6.0
START_LEAD_PER_REPLAYER_S = 5.0
#: How often a replayer in a VM reads its qdisc's counters.  A read (a pyroute2
#: qdisc dump) costs 8.3 ms of an idle TCG vCPU (0.6 ms natively): at the
#: namespace lab's 10 ms the replayer took 29 of a run's 44 s of its guest's
#: CPU, at SCHED_FIFO, starving the receivers beside it; at 50 ms, 11.5-15 s
#: (docs/vagrant.md).  50 ms still gives ten samples per 500 ms fidelity bin.
VM_SAMPLE_INTERVAL_NS = 50_000_000
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
               "-o", "ServerAliveInterval=5")


def project_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "vagrant" / "Vagrantfile").exists():
        raise NetlabError("the Vagrantfile is not beside this netlab installation",
                          where=str(root / "vagrant"),
                          fix="run netlab from a source checkout (pip install -e .)")
    return root


def wheels_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "netlab" / "vagrant" / "wheels"


def state_dir(lab: str) -> Path:
    return paths.run_root() / "vagrant" / lab


@dataclass
class VmOptions:
    box: str = DEFAULT_BOX
    memory_mb: int = DEFAULT_MEMORY_MB
    cpus: int = DEFAULT_CPUS
    driver: str = "qemu"
    max_vms: int = DEFAULT_MAX_VMS
    build_box: bool = True
    fold: bool = True  # routers share a neighbour's VM (netlab.vagrant.topology)


@dataclass
class VmLab:
    """A scenario's VMs as recorded in their state folder."""

    lab: str
    plan: LabPlan
    topology: dict[str, Any]
    directory: Path
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # node setup reports

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    @property
    def vm_names(self) -> list[str]:
        return [vm["name"] for vm in self.topology["vms"]]

    @property
    def placement(self) -> dict[str, str]:
        """host -> the VM it lives in (older labs: one VM per host)."""
        return dict(self.topology.get("placement") or {h: h for h in self.plan.hosts})

    @classmethod
    def load(cls, lab: str) -> VmLab:
        directory = state_dir(lab)
        try:
            data = json.loads((directory / "lab.json").read_text())
        except FileNotFoundError:
            raise NetlabError(f"no VM lab named {lab} is up", where=str(directory),
                              fix="'netlab vagrant up' its scenario first") from None
        return cls(lab, plan_from_json(data["plan"]), data["topology"], directory,
                   data.get("nodes", {}))

    def save(self) -> None:
        (self.directory / "lab.json").write_text(json.dumps(
            {"plan": plan_to_json(self.plan), "topology": self.topology, "nodes": self.nodes},
            indent=1))


# -- vagrant and ssh ------------------------------------------------------------


def _env(directory: Path) -> dict[str, str]:
    return {**os.environ, "VAGRANT_CWD": str(project_root() / "vagrant"),
            "VAGRANT_DOTFILE_PATH": str(directory / "dot-vagrant"),
            "NETLAB_VAGRANT_TOPOLOGY": str(directory / "topology.json"),
            "VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_NO_COLOR": "1",
            "VAGRANT_CHECKPOINT_DISABLE": "1"}


def vagrant(directory: Path, *args: str, capture: bool = False) -> str:
    """Run vagrant for one lab; its output goes to the lab's vagrant.log."""
    log_path = directory / "vagrant.log"
    with open(log_path, "a") as log:
        log.write(f"\n$ vagrant {' '.join(args)}\n")
        log.flush()
        result = subprocess.run(["vagrant", *args], env=_env(directory), text=True,
                                stdout=subprocess.PIPE if capture else log, stderr=log,
                                stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        tail = [line for line in log_path.read_text(errors="replace").splitlines()
                if "Progress:" not in line][-8:]
        raise NetlabError(f"vagrant {' '.join(args)} failed: " + " | ".join(tail),
                          where=str(log_path), fix="read the log; 'netlab vagrant down' cleans up")
    return result.stdout or ""


def ssh_argv(config: Path, host: str, command: str) -> list[str]:
    return ["ssh", "-F", str(config), *SSH_OPTIONS, host, command]


def ssh(config: Path, host: str, command: str, *, stdin: str | None = None,
        timeout: float = 120.0) -> str:
    result = subprocess.run(ssh_argv(config, host, command), input=stdin, text=True,
                            capture_output=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise NetlabError(f"'{command}' failed on VM {host}: {result.stderr.strip()[-400:]}",
                          where=f"VM {host}", fix=f"look inside with 'vagrant ssh {host}'")
    return result.stdout


def ssh_hostnames(config_text: str) -> dict[str, str]:
    """VM name -> management address, from ``vagrant ssh-config`` output."""
    hosts: dict[str, str] = {}
    current = None
    for line in config_text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "Host":
            current = words[1]
        elif len(words) >= 2 and words[0] == "HostName" and current is not None:
            hosts[current] = words[1]
    return hosts


@contextmanager
def in_vm_namespace() -> Iterator[None]:
    state = infra.start()
    with netns.inside(state.namespace):
        yield


# -- preparation ------------------------------------------------------------------


def ensure_wheels() -> Path:
    """numpy and pyroute2 wheels for the VMs' python (3.11 on bookworm), fetched
    once with this machine's pip: the VMs themselves reach no package index."""
    target = wheels_dir()
    target.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("-")[0].lower() for p in target.glob("*.whl")}
    if all(name in have for name in WHEELS):
        return target
    import numpy
    import pyroute2

    argv = [sys.executable, "-P", "-m", "pip", "download", "-q", "--only-binary=:all:",
            "--python-version", "3.11", "--implementation", "cp",
            "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
            "-d", str(target), f"numpy=={numpy.__version__}",
            f"pyroute2=={pyroute2.__version__}", "setuptools>=68", "wheel"]
    if subprocess.run(argv, check=False).returncode != 0:
        raise NetlabError("could not fetch the wheels the VMs install offline",
                          where=str(target), fix="put numpy, pyroute2, setuptools and wheel "
                          f"wheels for cp311 in {target}")
    return target


def ensure_box(options: VmOptions, *, rebuild: bool = False) -> float | None:
    """The box, built locally when it is netlab's own and missing; returns build seconds."""
    from netlab.vagrant.doctor import box_listed

    listing = subprocess.run(["vagrant", "box", "list"], capture_output=True, text=True,
                             check=False).stdout
    if box_listed(listing, options.box) and not rebuild:
        return None
    if options.box != DEFAULT_BOX or not options.build_box:
        raise NetlabError(f"the Vagrant box {options.box} (libvirt) is not installed",
                          where="--box", fix=f"'vagrant box add {options.box}', or build "
                          f"{DEFAULT_BOX} with 'sudo vagrant/build-box.sh'")
    started = time.monotonic()
    script = project_root() / "vagrant" / "build-box.sh"
    if subprocess.run(["bash", str(script), "--name", options.box], check=False).returncode:
        raise NetlabError("building the box failed (its output is above)", where=str(script),
                          fix="fix what it reports, then rerun")
    return time.monotonic() - started


def interface_ref(placement: dict[str, str], macs: dict[tuple[str, str], str], host: str,
                  link: str, ifname: str) -> dict[str, Any]:
    """Where one plan interface is inside its VM: the VM's own host finds its tunnel
    NIC by MAC; a folded host's interfaces (tunnel NIC or veth) and every veth carry
    the plan's name, in the host's namespace (None: the VM's own)."""
    vm = placement[host]
    namespace = None if host == vm else host
    mac = macs.get((vm, link))
    if namespace is None and mac is not None:
        return {"namespace": None, "mac": mac}
    return {"namespace": namespace, "ifname": ifname}


def node_setup_job(plan: LabPlan, topology: VmTopology, vm: str,
                   base_dir: Path | None = None) -> dict[str, Any]:
    """One VM's data plane: its folded hosts' namespaces, tunnel NICs (found by MAC,
    moved into a folded host's namespace and renamed as in the plan), veth pairs for
    the links inside it, addresses, routes, sysctls and each shaped egress's first
    shape (as the namespace lab's build does with tc)."""
    placement = topology.placement or {host: host for host in plan.hosts}
    hosts = [host for host in plan.hosts if placement[host] == vm]
    macs = {(name, nic.link): nic.mac for name, nics in topology.vms.items() for nic in nics}
    inner = {i.link for i in topology.inner_links if i.vm == vm}
    job: dict[str, Any] = {"namespaces": [h for h in hosts if h != vm], "interfaces": [],
                           "veths": [], "routes": [], "sysctls": [], "shapes": []}
    for link in inner:
        end_a, end_b = plan.links[link]
        job["veths"].append({"link": link, "ends": [
            {"namespace": None if end.host == vm else end.host, "ifname": end.name}
            for end in (end_a, end_b)]})
    for host in hosts:
        namespace = None if host == vm else host
        for iface in plan.hosts[host].interfaces:
            entry: dict[str, Any] = {"namespace": namespace, "ifname": iface.name,
                                     "address": str(iface.address)}
            if iface.link not in inner:  # a tunnel NIC: renamed only in a folded host
                entry["mac"] = macs[(vm, iface.link)]
            job["interfaces"].append(entry)
            if iface.egress.shape == UNSHAPED and iface.egress.trace is None:
                continue
            first = direction_schedule(iface, base_dir, 1.0).changes[0].shape
            job["shapes"].append({**interface_ref(placement, macs, host, iface.link,
                                                  iface.name), "shape": shape_to_json(first)})
        job["routes"] += [{"namespace": namespace, "destination": destination, "via": via}
                          for destination, via in guest_routes(plan, host,
                                                               own_vm=namespace is None)]
        job["sysctls"] += [{"namespace": namespace, "key": key, "value": value}
                           for key, value in plan.hosts[host].sysctls.items()]
    return job


def up(scenario: Scenario, options: VmOptions, subnet: Any = None,
       log: IO[str] | None = None) -> tuple[VmLab, dict[str, float]]:
    """Box, wheels, namespace and daemons, VMs up and their data links configured."""
    timings: dict[str, float] = {}
    from netlab.preflight import choose_subnet

    plan = plan_lab(scenario, subnet or scenario.subnet or choose_subnet(scenario.name))
    directory = state_dir(plan.lab)
    directory.mkdir(parents=True, exist_ok=True)
    placement = fold_routers(plan, endpoint_hosts(scenario)) if options.fold else None
    topology = build_topology(
        plan, source=str(scenario.source or scenario.name), box=options.box,
        memory_mb=options.memory_mb, cpus=options.cpus, driver=options.driver,
        project=str(project_root()), wheels=str(ensure_wheels()), max_vms=options.max_vms,
        placement=placement)
    (directory / "topology.json").write_text(json.dumps(topology.to_json(), indent=1))
    built = ensure_box(options)
    if built is not None:
        timings["box_build_s"] = built
    lab = VmLab(plan.lab, plan, topology.to_json(), directory)
    lab.save()
    with in_vm_namespace():
        started = time.monotonic()
        _up_recorded(directory, topology)
        timings["vms_up_s"] = time.monotonic() - started
        lab.ssh_config.write_text(vagrant(directory, "ssh-config", capture=True))
        for vm in topology.vms:
            job = json.dumps(node_setup_job(
                plan, topology, vm, scenario.source.parent if scenario.source else None))
            out = ssh(lab.ssh_config, vm,
                      f"sudo {VM_PYTHON} -P -m netlab.vagrant.node setup /dev/stdin", stdin=job)
            lab.nodes[vm] = json.loads(out.strip().splitlines()[-1])
        lab.save()
    return lab, timings


def _up_recorded(directory: Path, topology: VmTopology) -> None:
    """``vagrant up``, with the libvirt objects it makes recorded for teardown: the
    domains' and network's names before they exist, whatever else it made after, even
    when it fails half way (a name already defined before is not netlab's)."""
    before = infra.libvirt_objects()
    intended = {f"domain {topology.prefix}{vm}" for vm in topology.vms}
    intended.add(f"network {topology.management_network}")
    infra.record(intended - before)
    try:
        vagrant(directory, "up", "--parallel", "--provider", "libvirt")
    finally:
        infra.record(infra.made_by_up(before, infra.libvirt_objects(), topology.prefix,
                                      topology.management_network))


# -- a run ----------------------------------------------------------------------------


@dataclass
class NodeJob:
    host: str
    job: dict[str, Any]
    proc: subprocess.Popen[str] | None = None
    clock_port: int = 0
    model: clock.ClockModel | None = None


def build_jobs(scenario: Scenario, plan: LabPlan, topology: dict[str, Any], vm_dir: str
               ) -> tuple[dict[str, dict[str, Any]], list[FlowProcesses]]:
    """Each VM's job (replays and processes on its clock) and the flows as the
    namespace runner would see them (for result collection)."""
    macs = {(vm["name"], nic["link"]): nic["mac"] for vm in topology["vms"] for nic in vm["nics"]}
    placement = topology.get("placement") or {host: host for host in plan.hosts}
    base_dir = scenario.source.parent if scenario.source else None
    total_s = RECEIVER_HEAD_START_S + scenario.duration_s
    jobs: dict[str, dict[str, Any]] = {
        vm["name"]: {"vm": vm["name"], "run_dir": vm_dir, "cwd": vm_dir, "duration_s": total_s,
                     "zero_s": RECEIVER_HEAD_START_S,
                     "netem": True, "sample_interval_ns": VM_SAMPLE_INTERVAL_NS,
                     "replays": [], "processes": []} for vm in topology["vms"]}
    for link, direction, iface in shaped_directions(plan):
        schedule = direction_schedule(iface, base_dir, scenario.duration_s)
        jobs[placement[iface.host]]["replays"].append({
            "link": link, "direction": direction,
            **interface_ref(placement, macs, iface.host, link, iface.name),
            "schedule": schedule_to_json(schedule), "loop": iface.egress.trace_loop})
    flows: list[FlowProcesses] = []
    index = 0
    for flow in scenario.flows:
        if flow.kind == "probe":
            continue
        vm_flow_dir = Path(vm_dir) / "flows" / flow.id
        receiver, sender = flow_commands(flow, index, plan, scenario, vm_flow_dir)
        receiver[0] = sender[0] = VM_PYTHON
        gate = kind_of(flow.kind).sender_waits_for_start
        if gate:
            sender = [*sender, "--wait-start"]
        end_s = flow.stop_s if flow.stop_s is not None else scenario.duration_s
        stop_s = RECEIVER_HEAD_START_S + end_s
        for role in ("receiver", "sender"):
            host = flow.dst if role == "receiver" else flow.src
            jobs[placement[host]].setdefault("dirs", []).append(str(vm_flow_dir / role))
        jobs[placement[flow.dst]]["processes"].append({
            "name": f"flows/{flow.id}/receiver/receiver", "argv": receiver, "start_s": 0.0,
            "stop_s": stop_s})
        jobs[placement[flow.src]]["processes"].append({
            "name": f"flows/{flow.id}/sender/sender", "argv": sender,
            "start_s": RECEIVER_HEAD_START_S + flow.start_s, "stop_s": stop_s, "gate": gate})
        flows.append(FlowProcesses(flow, Path("flows") / flow.id, receiver, sender))
        index += 1
    return jobs, flows


def _read_word(proc: subprocess.Popen[str], expected: str, host: str, timeout_s: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    import select

    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        if line.split()[:1] == [expected]:
            return line.strip()
    err = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""
    raise NetlabError(f"the node on VM {host} did not say '{expected}' within {timeout_s:.0f} s"
                      + (f": {err.strip()[-400:]}" if err else ""),
                      where=f"VM {host}", fix="see the VM's run folder under " + VM_RUN_ROOT)


def _clock_model(sock: socket.socket, address: str, port: int,
                 before: clock.OffsetEstimate | None = None) -> clock.ClockModel:
    estimate = clock.estimate(clock.measure(sock, (address, port)))
    return clock.ClockModel(estimate) if before is None else clock.ClockModel(before, estimate)


def run(lab: VmLab, scenario: Scenario, out_base: Path, log: IO[str] | None = None
        ) -> Path:
    """Run ``scenario`` on ``lab``'s VMs; results in a namespace-style run directory."""
    def say(text: str) -> None:
        if log is not None:
            print(text, file=log, flush=True)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    vm_dir = f"{VM_RUN_ROOT}/{scenario.name}-{stamp}"
    jobs, flows = build_jobs(scenario, lab.plan, lab.topology, vm_dir)
    run_dir = new_run_dir(out_base, scenario.name)
    nodes = [NodeJob(host, job) for host, job in jobs.items()]
    started = time.time()
    with in_vm_namespace():
        synced = time.monotonic()
        sync_code(lab.ssh_config, list(jobs))  # the nodes run the driver's code, not an older copy
        say(f"code synced in {time.monotonic() - synced:.1f} s")
        addresses = ssh_hostnames(lab.ssh_config.read_text())
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for node in nodes:
                ssh(lab.ssh_config, node.host, f"sudo mkdir -p {shlex.quote(vm_dir)} && "
                    f"sudo tee {shlex.quote(vm_dir)}/job.json >/dev/null",
                    stdin=json.dumps(node.job))
                node.proc = subprocess.Popen(
                    ssh_argv(lab.ssh_config, node.host,
                             f"sudo {VM_PYTHON} -P -m netlab.vagrant.node run {vm_dir}/job.json"),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, bufsize=1)
            prepared = time.monotonic()
            for node in nodes:
                assert node.proc is not None
                node.clock_port = int(_read_word(node.proc, "clock", node.host, 240).split()[1])
                node.model = _clock_model(sock, addresses[node.host], node.clock_port)
                say(f"clock {node.host}: offset {node.model.before.offset_ns / 1e9:.3f} s "
                    f"± {node.model.uncertainty_ns / 1e6:.3f} ms")
            say(f"endpoints imported and clocks measured in {time.monotonic() - prepared:.1f} s")
            threads = vcpus.lab_threads(lab.topology["prefix"], lab.vm_names)
            with vcpus.raised(threads) as priorities:
                host_before = hostload.host_snapshot(threads)
                t0, end_ns = _timed_run(nodes, RECEIVER_HEAD_START_S + scenario.duration_s, say)
                # the run's zero: traces and senders start there, after the receivers
                zero_ns = t0 + round(RECEIVER_HEAD_START_S * 1e9)
                host_after = hostload.host_snapshot(threads)
            for node in nodes:
                assert node.model is not None and node.proc is not None
                node.model = _clock_model(sock, addresses[node.host], node.clock_port,
                                          node.model.before)
                assert node.proc.stdin is not None
                node.proc.stdin.write("exit\n")
                node.proc.stdin.flush()
                node.proc.wait(30)
        finally:
            sock.close()
            for node in nodes:
                if node.proc is not None and node.proc.poll() is None:
                    node.proc.kill()
                    node.proc.wait()
        for node in nodes:
            _gather(lab.ssh_config, node.host, vm_dir, run_dir)
    models = {node.host: node.model for node in nodes if node.model is not None}
    return _results(lab, scenario, run_dir, flows, models, zero_ns, end_ns, started,
                    (host_before, host_after), priorities)


def _timed_run(nodes: list[NodeJob], total_s: float, say: Callable[[str], None]
               ) -> tuple[int, int]:
    """The shared start sent to every node, then their end; returns (t0, end) in ns."""
    replayers = max(len(node.job["replays"]) for node in nodes)
    t0 = time.monotonic_ns() + int((START_LEAD_S + START_LEAD_PER_REPLAYER_S * replayers) * 1e9)
    for node in nodes:
        assert node.proc is not None and node.proc.stdin is not None
        assert node.model is not None
        node.proc.stdin.write(f"start {node.model.to_vm(t0)}\n")
        node.proc.stdin.flush()
    for node in nodes:
        assert node.proc is not None
        _read_word(node.proc, "started", node.host, 60)
    if time.monotonic_ns() > t0:
        say("warning: a node was ready only after the shared start")
    for node in nodes:
        assert node.proc is not None
        _read_word(node.proc, "done", node.host, total_s + 60)
    return t0, time.monotonic_ns()


CODE_PACKAGES = ("labcore", "netlab", "shaping", "endpoints")


def sync_code(config: Path, hosts: list[str]) -> None:
    """The three packages' sources into each VM's /netlab, over SSH in parallel.

    ``vagrant rsync`` does the same for the whole project but took minutes
    under QEMU TCG (vagrant's start-up and a checksum pass over every file
    per VM); the packages are under 2 MB.
    """
    root = project_root()
    argv = ["tar", "-C", str(root), "--exclude=__pycache__", "-cf", "-", *CODE_PACKAGES]
    archive = subprocess.run(argv, capture_output=True, check=True).stdout
    procs = {host: subprocess.Popen(
        ssh_argv(config, host, "sudo tar -C /netlab -xf - && sudo chown -R vagrant: /netlab"),
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for host in hosts}
    for host, proc in procs.items():
        _, err = proc.communicate(archive, timeout=120)
        if proc.returncode != 0:
            raise NetlabError(f"copying netlab's code to VM {host} failed: {err.decode()[-300:]}",
                              where=f"VM {host}:/netlab", fix="check the VM is up ('netlab "
                              "vagrant status') and its disk has room")


def _gather(config: Path, host: str, vm_dir: str, run_dir: Path) -> None:
    """The VM's run folder, by tar over SSH, into the run directory."""
    proc = subprocess.Popen(ssh_argv(config, host, f"sudo tar -C {shlex.quote(vm_dir)} "
                                     "--exclude=job.json -cf - ."),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
        archive.extractall(run_dir, filter="data")
    if proc.wait() != 0:
        raise NetlabError(f"gathering logs from VM {host} failed", where=f"{host}:{vm_dir}",
                          fix="check the VM's disk and that the run folder exists")
    ssh(config, host, f"sudo rm -rf {shlex.quote(vm_dir)}")


def _results(lab: VmLab, scenario: Scenario, run_dir: Path, flows: list[FlowProcesses],
             models: dict[str, clock.ClockModel], zero_ns: int, end_ns: int, started: float,
             host: tuple[MachineSnapshot, MachineSnapshot],
             priorities: dict[str, int | None]) -> Path:
    placement = lab.placement
    for fp in flows:
        fp.directory = run_dir / fp.directory
        logclock.to_driver_clock(fp.directory, models[placement[fp.flow.src]],
                                 models[placement[fp.flow.dst]])
    replay_logs = {}
    for path in sorted((run_dir / "replay").glob("*.log")):
        link, direction = path.name[:-len(".log")].rsplit(".", 1)
        replay_logs[(link, direction)] = read_replay_log(path)
    base_dir = scenario.source.parent if scenario.source else None
    guests = hostload.guest_loads(run_dir)
    machine = hostload.combined(*host, guests)
    fidelity = collect_fidelity(lab.plan, probes=[], replay_logs=replay_logs, user_links={},
                                start_ns=zero_ns, base_dir=base_dir, machine=machine,
                                sample_interval_ns=VM_SAMPLE_INTERVAL_NS)
    flow_entries = flow_results(flows, lab.plan, run_dir, start_ns=zero_ns, end_ns=end_ns,
                                base_dir=base_dir)
    results = build_results(scenario, "kernel", flow_entries, fidelity, started=started,
                            ended=time.time())
    kernels = {node.get("kernel") for node in lab.nodes.values()}
    results["kernel"] = ", ".join(sorted(k for k in kernels if k)) or results["kernel"]
    results["fairness"] = fairness_by_link(flow_entries, lab.plan)
    results["vagrant"] = {
        "vms": lab.vm_names, "placement": placement,
        "netem": {h: n.get("netem") for h, n in lab.nodes.items()},
        "memory_mb": lab.topology["memory_mb"], "cpus": lab.topology["cpus"],
        "driver": lab.topology["driver"], "box": lab.topology["box"],
        "clock": {host: {"offset_ns": m.before.offset_ns, "drift_ppm": m.drift_ppm,
                         "uncertainty_ms": m.uncertainty_ns / 1e6}
                  for host, m in models.items()},
        "delay_uncertainty_ms": max((m.uncertainty_ns for m in models.values()), default=0) * 2
        / 1e6,
        # the host's CPUs and the VMs' vCPU threads; inside each VM its CPU, its
        # replayers' and endpoints' scheduling, and the priority each replayer got
        "machine": {"host": hostload.machine_load(*host).to_dict(), "guests": guests,
                    "vcpu_nice": priorities},
    }
    write_results(run_dir, results)
    plot_run(run_dir)
    return run_dir


# -- teardown and status ------------------------------------------------------------


def down(lab_name: str) -> list[str]:
    """Destroy one lab's VMs (vagrant removes the networks it made) and its state."""
    directory = state_dir(lab_name)
    removed: list[str] = []
    if (directory / "dot-vagrant").exists():
        with in_vm_namespace():
            vagrant(directory, "destroy", "-f")
        removed.append(f"VMs of {lab_name}")
    if directory.exists():
        shutil.rmtree(directory)
        removed.append(str(directory))
    return removed


def down_all() -> list[str]:
    """Every VM lab, then libvirt's definitions, daemons and the namespace."""
    removed: list[str] = []
    root = paths.run_root() / "vagrant"
    for directory in sorted(root.glob("*/")) if root.exists() else []:
        if (directory / "lab.json").exists() or (directory / "dot-vagrant").exists():
            removed += down(directory.name)
    if infra.InfraState.load() is not None:
        with in_vm_namespace():
            removed += infra.purge_libvirt()
        removed += infra.stop()
    if root.exists() and not any(root.iterdir()):
        root.rmdir()
    return removed


def status() -> list[dict[str, Any]]:
    root = paths.run_root() / "vagrant"
    labs = []
    for directory in sorted(root.glob("*/")) if root.exists() else []:
        if not (directory / "lab.json").exists():
            continue
        entry: dict[str, Any] = {"lab": directory.name, "vms": {}}
        if infra.InfraState.load() is not None:
            with in_vm_namespace():
                out = vagrant(directory, "status", "--machine-readable", capture=True)
            for line in out.splitlines():
                parts = line.split(",")
                if len(parts) >= 4 and parts[2] == "state":
                    entry["vms"][parts[1]] = parts[3]
        labs.append(entry)
    return labs

