"""The confined place the VMs live in: a network namespace with libvirt inside.

libvirtd (and the virtlogd it needs) are started inside one network
namespace, so every network libvirt makes (the management bridge, its
dnsmasq), every tap and every UDP tunnel between VMs exists only there: the
VMs can reach each other and the driver (which enters the same namespace),
nothing else.  Machines without systemd get the daemons started by hand
(``-d``); their pids, the namespace and the /dev/kvm mode changed are
recorded in a state file so ``stop`` removes exactly what ``start`` made.

/dev/kvm: libvirt probes it on every connection; when its mode does not let
the ``kvm`` group in, each libvirt call stalls about 50 s, so it is set to
root:kvm 0660 (and restored on ``stop``).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from netlab import paths
from netlab.errors import NetlabError
from netlab.lab import netns
from netlab.lab.state import pid_alive

DEFAULT_NAMESPACE = "nl-vagrant"
LIBVIRT_URI = "qemu:///system"
DAEMON_PIDFILES = {"virtlogd": Path("/run/virtlogd.pid"), "libvirtd": Path("/run/libvirtd.pid")}
READY_TIMEOUT_S = 60.0


def namespace_name() -> str:
    return os.environ.get("NETLAB_VAGRANT_NETNS", DEFAULT_NAMESPACE)


def state_file() -> Path:
    return paths.run_root() / "vagrant" / "infra.json"


@dataclass
class InfraState:
    namespace: str
    created_namespace: bool = False
    daemons: dict[str, int] = field(default_factory=dict)  # name -> pid we started
    kvm_mode: int | None = None  # /dev/kvm's mode before we changed it
    kvm_gid: int | None = None

    def save(self) -> None:
        path = state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls) -> InfraState | None:
        try:
            return cls(**json.loads(state_file().read_text()))
        except FileNotFoundError:
            return None


def _pid_from(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _net_namespace_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def require_tools() -> None:
    missing = [tool for tool in ("vagrant", "virsh", "libvirtd", "virtlogd", "qemu-system-x86_64",
                                 "ssh", "ip")
               if shutil.which(tool) is None]
    if missing:
        raise NetlabError(
            f"VM runs need {', '.join(missing)}, not found on PATH", where="netlab vagrant",
            fix="apt-get install -y vagrant vagrant-libvirt libvirt-daemon-system "
                "libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base openssh-client")


def _fix_kvm(state: InfraState) -> None:
    kvm = Path("/dev/kvm")
    if not kvm.exists():
        return
    try:
        gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return
    info = kvm.stat()
    if info.st_gid == gid and info.st_mode & 0o060 == 0o060:
        return
    state.kvm_mode, state.kvm_gid = info.st_mode & 0o7777, info.st_gid
    state.save()
    os.chown(kvm, 0, gid)
    kvm.chmod(0o660)


def virsh(*args: str, check: bool = True, timeout: float = 60.0) -> str:
    result = subprocess.run(["virsh", "-c", LIBVIRT_URI, *args], capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise NetlabError(f"virsh {' '.join(args)} failed: {result.stderr.strip()}",
                          where="libvirt", fix="see 'netlab vagrant status' and libvirtd's log")
    return result.stdout


def start() -> InfraState:
    """Namespace, /dev/kvm access, virtlogd and libvirtd in the namespace (idempotent)."""
    require_tools()
    name = namespace_name()
    state = InfraState.load() or InfraState(name)
    if state.namespace != name:
        raise NetlabError(
            f"libvirt already runs for VM labs in namespace {state.namespace}, not {name}",
            where=str(state_file()),
            fix=f"use NETLAB_VAGRANT_NETNS={state.namespace}, or 'netlab vagrant down --all' first")
    if not netns.exists(name):
        subprocess.run(["ip", "netns", "add", name], check=True)
        state.created_namespace = True
        state.save()
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    _fix_kvm(state)
    ns_inode = os.stat(netns.path_of(name)).st_ino
    for daemon, pidfile in DAEMON_PIDFILES.items():
        pid = _pid_from(pidfile)
        if pid is not None:
            if _net_namespace_inode(pid) != ns_inode:
                raise NetlabError(
                    f"{daemon} (pid {pid}) runs outside namespace {name}: VMs it starts would "
                    "be on this machine's own network", where=str(pidfile),
                    fix=f"stop that {daemon} (e.g. 'systemctl stop {daemon}' or kill {pid}), "
                        "then retry: netlab starts its own inside the namespace")
            continue
        subprocess.run(["ip", "netns", "exec", name, daemon, "-d"], check=True)
        deadline = time.monotonic() + 10
        while (pid := _pid_from(pidfile)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid is None:
            raise NetlabError(f"{daemon} did not start", where=f"namespace {name}",
                              fix=f"run 'ip netns exec {name} {daemon} -v' to see why")
        state.daemons[daemon] = pid
        state.save()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        result = subprocess.run(["virsh", "-c", LIBVIRT_URI, "version"], capture_output=True,
                                text=True, check=False)
        if result.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise NetlabError(f"libvirtd does not answer: {result.stderr.strip()}",
                              where=f"namespace {name}", fix="see /var/log/libvirt/libvirtd.log")
        time.sleep(0.5)
    return state


def leftovers() -> list[str]:
    """Everything libvirt still has defined: domains, networks, pools."""
    found: list[str] = []
    for kind, command in (("domain", ("list", "--all", "--name")),
                          ("network", ("net-list", "--all", "--name")),
                          ("pool", ("pool-list", "--all", "--name"))):
        for name in virsh(*command, check=False).split():
            found.append(f"{kind} {name}")
    return found


def purge_libvirt(keep: tuple[str, ...] = ("default",)) -> list[str]:
    """Undefine every domain, network (but ``keep``'s, libvirt's own) and
    storage pool with its volumes: libvirt here is ours alone."""
    removed: list[str] = []
    for name in virsh("list", "--all", "--name", check=False).split():
        virsh("destroy", name, check=False)
        virsh("undefine", name, "--remove-all-storage", "--nvram", check=False)
        removed.append(f"domain {name}")
    for name in virsh("net-list", "--all", "--name", check=False).split():
        if name in keep:
            continue
        virsh("net-destroy", name, check=False)
        virsh("net-undefine", name, check=False)
        removed.append(f"network {name}")
    for name in virsh("pool-list", "--all", "--name", check=False).split():
        for volume in virsh("vol-list", name, check=False).splitlines()[2:]:
            if volume.split():
                virsh("vol-delete", volume.split()[0], "--pool", name, check=False)
                removed.append(f"volume {name}/{volume.split()[0]}")
        virsh("pool-destroy", name, check=False)
        virsh("pool-undefine", name, check=False)
        removed.append(f"pool {name}")
    return removed


def stop() -> list[str]:
    """Stop what ``start`` started, remove the namespace it made, restore /dev/kvm."""
    state = InfraState.load()
    if state is None:
        return []
    removed = []
    for daemon in ("libvirtd", "virtlogd"):
        pid = state.daemons.get(daemon)
        if pid is None or not pid_alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        removed.append(f"{daemon} pid {pid}")
    if state.created_namespace and netns.exists(state.namespace):
        subprocess.run(["ip", "netns", "del", state.namespace], check=False)
        removed.append(f"namespace {state.namespace}")
    if state.kvm_mode is not None and state.kvm_gid is not None:
        with contextlib.suppress(OSError):
            os.chown("/dev/kvm", 0, state.kvm_gid)
            os.chmod("/dev/kvm", state.kvm_mode)
    state_file().unlink(missing_ok=True)
    return removed
