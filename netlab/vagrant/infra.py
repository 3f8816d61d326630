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

from labcore.jsonfile import write_json_atomic
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


# -- the libvirt objects netlab made -------------------------------------------------
#
# libvirtd runs in netlab's namespace but keeps its definitions machine-wide
# (/etc/libvirt, /var/lib/libvirt): a machine's own VMs, networks and pools are
# visible here too.  ``vagrant up`` records what it made ("kind name" strings,
# volumes as "volume POOL/NAME"), and teardown touches nothing else.

LIBVIRT_RECORD = "libvirt.json"
BOX_IMAGE_MARK = "_vagrant_box_image_"  # vagrant-libvirt's name for an uploaded box


def record_path() -> Path:
    return paths.run_root() / "vagrant" / LIBVIRT_RECORD


def parse_names(output: str) -> list[str]:
    """``virsh list|net-list|pool-list --all --name``: one name a line, blank lines around."""
    return [line.strip() for line in output.splitlines() if line.strip()]


def parse_volumes(output: str) -> list[str]:
    """``virsh vol-list POOL``: a header row, a dashed rule, then `` NAME  PATH`` rows."""
    lines = output.splitlines()
    rule = next((i for i, line in enumerate(lines) if line.strip().startswith("---")), None)
    if rule is None:
        return []
    return [line.split()[0] for line in lines[rule + 1:] if line.split()]


def libvirt_objects() -> set[str]:
    """Everything libvirt has defined now (run inside the VM namespace)."""
    found: set[str] = set()
    for kind, command in (("domain", ("list", "--all", "--name")),
                          ("network", ("net-list", "--all", "--name")),
                          ("pool", ("pool-list", "--all", "--name"))):
        found.update(f"{kind} {name}" for name in parse_names(virsh(*command, check=False)))
    for pool in sorted(o.split(" ", 1)[1] for o in found if o.startswith("pool ")):
        found.update(f"volume {pool}/{volume}"
                     for volume in parse_volumes(virsh("vol-list", pool, check=False)))
    return found


def made_by_up(before: set[str], after: set[str], prefix: str, network: str) -> set[str]:
    """What one ``vagrant up`` made: new objects that carry its names (domains and disks
    with the lab's prefix, its management network, an uploaded box) and new pools;
    whatever else appeared meanwhile is somebody else's."""
    def ours(obj: str) -> bool:
        kind, name = obj.split(" ", 1)
        volume = name.split("/", 1)[-1]
        return (kind == "pool" or (kind == "domain" and name.startswith(prefix))
                or (kind == "network" and name == network)
                or (kind == "volume" and (volume.startswith(prefix) or BOX_IMAGE_MARK in volume)))
    return {obj for obj in after - before if ours(obj)}


def recorded() -> set[str]:
    try:
        data = json.loads(record_path().read_text())
    except FileNotFoundError:
        return set()
    except ValueError:
        raise NetlabError("netlab's record of its libvirt objects is garbled",
                          where=str(record_path()),
                          fix="remove netlab's VMs, networks and pools with virsh by hand, "
                              "then delete this file") from None
    return {str(obj) for obj in data.get("objects", [])}


def _write_record(objects: set[str]) -> None:
    path = record_path()
    if not objects:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"objects": sorted(objects)}, indent=1, trailing_newline=True)


def record(objects: set[str]) -> None:
    """Add ``objects`` to the record (before they exist, where their names are known)."""
    _write_record(recorded() | objects)


def forget(objects: set[str]) -> None:
    _write_record(recorded() - objects)


_ORDER = {"domain": 0, "network": 1, "volume": 2, "pool": 3}


def removable(present: set[str], ours: set[str]) -> list[str]:
    """The present objects netlab recorded, in the order they can go (domains, networks,
    volumes, pools); a pool only when every volume left in it is netlab's too."""
    chosen = present & ours
    for obj in sorted(chosen):
        if obj.startswith("pool "):
            pool = obj.split(" ", 1)[1]
            if any(o.startswith(f"volume {pool}/") and o not in ours for o in present):
                chosen.discard(obj)
    return sorted(chosen, key=lambda obj: (_ORDER[obj.split(" ", 1)[0]], obj))


def purge_libvirt() -> list[str]:
    """Remove the libvirt objects netlab recorded, and nothing else: a machine's own
    domains, networks and pools stay as they are."""
    present, ours = libvirt_objects(), recorded()
    removed: list[str] = []
    for obj in removable(present, ours):
        kind, name = obj.split(" ", 1)
        if kind == "domain":
            virsh("destroy", name, check=False)
            virsh("undefine", name, "--remove-all-storage", "--nvram", check=False)
        elif kind == "network":
            virsh("net-destroy", name, check=False)
            virsh("net-undefine", name, check=False)
        elif kind == "volume":
            pool, volume = name.split("/", 1)
            virsh("vol-delete", volume, "--pool", pool, check=False)
        else:
            virsh("pool-destroy", name, check=False)
            virsh("pool-undefine", name, check=False)
        removed.append(obj)
    forget((ours - present) | set(removed))
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
