"""Can this machine run VM labs?  Every tool, daemon, permission and the box, each with its fix.

One declaration of what the VM path needs serves three uses: ``netlab vagrant
doctor`` prints it, every ``netlab vagrant`` command checks its share of it
before it starts anything (a missing tool is one error naming the apt-get
line, never a traceback from deep inside ``subprocess``), and ``install.sh
--vagrant`` installs its package list (``python -m netlab.vagrant.doctor
--packages``), so the installer and the check cannot drift apart.
"""

from __future__ import annotations

import argparse
import grp
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from netlab.lab.state import pid_alive
from netlab.preflight import PreflightError, ProbeResult

#: What each command uses: ``vms`` brings VMs up and runs on them, ``box`` builds
#: netlab's box, ``manage`` lists and removes what netlab made.
USES = ("vms", "box", "manage")
COMMAND_USES: dict[str, frozenset[str]] = {
    "up": frozenset({"vms", "manage"}),
    "run": frozenset({"vms", "manage"}),
    "compare": frozenset({"vms", "manage"}),
    "box": frozenset({"box", "manage"}),
    "down": frozenset({"manage"}),
    "status": frozenset({"manage"}),
    "doctor": frozenset(USES),
}
INSTALL_HINT = "sudo bash install.sh --vagrant"
APT = "apt-get update && apt-get install -y --no-install-recommends"
DOCS = "docs/vagrant.md"
MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
#: Where Debian's vagrant-libvirt package and ``vagrant plugin install`` put the plugin.
PLUGIN_GLOBS = ("/usr/share/rubygems-integration/all/specifications/vagrant-libvirt-*.gemspec",
                "/usr/share/vagrant-plugins/plugins.d/vagrant-libvirt.json",
                "~/.vagrant.d/gems/*/specifications/vagrant-libvirt-*.gemspec",
                "/opt/vagrant/embedded/gems/specifications/vagrant-libvirt-*.gemspec")
#: Measured: 1.45-1.72 GB resident per VM at 768 MB guest RAM under QEMU TCG (docs/vagrant.md).
VM_OVERHEAD_MB = 950
SYSTEMD_UNITS = ("libvirtd.service", "libvirtd.socket", "libvirtd-ro.socket",
                 "libvirtd-admin.socket", "virtlogd.service", "virtlogd.socket",
                 "virtlogd-admin.socket")


@dataclass(frozen=True)
class Tool:
    """A program the VM path runs, the Debian packages that bring it (the first has it,
    the rest belong with it), and why it is needed."""

    command: str
    packages: tuple[str, ...]
    why: str
    uses: frozenset[str]


def _tool(command: str, packages: str, why: str, *uses: str) -> Tool:
    return Tool(command, tuple(packages.split()), why, frozenset(uses))


TOOLS: tuple[Tool, ...] = (
    _tool("vagrant", "vagrant vagrant-libvirt", "brings the VMs up and down",
          "vms", "box", "manage"),
    _tool("virsh", "libvirt-clients", "lists and removes the libvirt objects netlab made",
          "vms", "manage"),
    _tool("libvirtd", "libvirt-daemon-system", "runs the VMs (netlab starts it in its namespace)",
          "vms"),
    _tool("virtlogd", "libvirt-daemon-system", "keeps the VMs' console logs for libvirtd", "vms"),
    _tool("qemu-system-x86_64", "qemu-system-x86", "emulates the VMs", "vms"),
    _tool("qemu-img", "qemu-utils", "makes the VMs' disks and the box image", "vms", "box"),
    _tool("dnsmasq", "dnsmasq-base", "DHCP on the VMs' management network (libvirt runs it)",
          "vms"),
    _tool("ssh", "openssh-client", "runs each run's node in its VM", "vms"),
    _tool("rsync", "rsync", "copies the project into the VMs (vagrant's synced folders)", "vms"),
    _tool("ip", "iproute2", "makes the namespace libvirtd runs in", "vms", "manage"),
    _tool("debootstrap", "debootstrap", "builds the box's Debian system", "box"),
    _tool("extlinux", "extlinux syslinux-common", "makes the box bootable", "box"),
    _tool("sfdisk", "fdisk", "partitions the box's disk", "box"),
    _tool("mkfs.ext4", "e2fsprogs", "formats the box's disk", "box"),
    _tool("losetup", "mount", "mounts the box's disk while it is built", "box"),
)


def apt_packages() -> list[str]:
    """Every Debian package the VM path needs, in a stable order (install.sh installs these)."""
    return list(dict.fromkeys(package for tool in TOOLS for package in tool.packages))


def install_fix(packages: Iterable[str]) -> str:
    return f"{APT} {' '.join(dict.fromkeys(packages))} (or all of it: {INSTALL_HINT})"


# -- the checks ------------------------------------------------------------------------


def check_root(command: str) -> ProbeResult:
    if os.geteuid() == 0:
        return ProbeResult("root", True, "running as root")
    return ProbeResult(
        "root", False, f"running as uid {os.geteuid()}: VM labs need root (a network namespace "
        "for libvirtd, /dev/kvm's group, libvirt's system daemon)",
        fix=f"sudo netlab vagrant {command} ...", where=f"netlab vagrant {command}")


def check_tools(uses: set[str] | frozenset[str]) -> list[ProbeResult]:
    """One row per tool the command uses: found where, or missing with its packages."""
    rows = []
    path = os.environ.get("PATH", "")
    for tool in TOOLS:
        if not tool.uses & uses:
            continue
        found = shutil.which(tool.command)
        if found:
            rows.append(ProbeResult(f"tool {tool.command}", True, f"{found} ({tool.why})"))
        else:
            rows.append(ProbeResult(
                f"tool {tool.command}", False,
                f"not found: {tool.why} (package {tool.packages[0]})",
                fix=f"{APT} {' '.join(tool.packages)}", where=f"PATH={path}"))
    # extlinux without its recommended syslinux-common lacks the boot sector
    if "box" in uses and shutil.which("extlinux") and not MBR.exists():
        rows.append(ProbeResult("file mbr.bin", False,
                                "not found: the box's boot sector (package syslinux-common)",
                                fix=f"{APT} syslinux-common", where=str(MBR)))
    return rows


def _plugin_found() -> bool:
    for pattern in PLUGIN_GLOBS:
        expanded = Path(os.path.expanduser(pattern))
        if any(Path(expanded.anchor).glob(str(expanded.relative_to(expanded.anchor)))):
            return True
    try:
        listing = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True,
                                 timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split()[:1] == ["vagrant-libvirt"] for line in listing.splitlines())


def check_plugin() -> list[ProbeResult]:
    """vagrant-libvirt, checked only where vagrant itself is (its row already names both)."""
    if shutil.which("vagrant") is None:
        return []
    if _plugin_found():
        return [ProbeResult("vagrant-libvirt", True, "vagrant's libvirt provider is installed")]
    return [ProbeResult("vagrant-libvirt", False, "vagrant has no libvirt provider",
                        fix=f"{APT} vagrant-libvirt", where="vagrant plugin list")]


def _pid_in(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _net_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _systemd_active() -> list[str]:
    """The libvirt units systemd runs (machines with systemd as init only)."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        return []
    result = subprocess.run(["systemctl", "is-active", *SYSTEMD_UNITS], capture_output=True,
                            text=True, timeout=30, check=False)
    states = result.stdout.split()
    return [unit for unit, state in zip(SYSTEMD_UNITS, states, strict=False) if state == "active"]


def daemon_namespace(pid: int) -> str | None:
    """The ``ip netns`` name of the network namespace ``pid`` runs in; None for one
    without a name (this machine's own, or a container's)."""
    inode = _net_inode(f"/proc/{pid}/ns/net")
    netns_dir = Path("/run/netns")
    names = sorted(netns_dir.iterdir()) if netns_dir.is_dir() else []
    return next((p.name for p in names if inode is not None and _net_inode(str(p)) == inode),
                None)


def _elsewhere(daemon: str, pid: int, pidfile: Path, namespace: str) -> ProbeResult:
    """A daemon netlab cannot use: in another VM namespace of netlab's, or on the machine's
    own network (where the VMs it started would sit)."""
    from netlab.vagrant.infra import InfraState

    where = daemon_namespace(pid)
    state = InfraState.load()
    if where is not None and state is not None and state.namespace == where:
        return ProbeResult(
            f"daemon {daemon}", False, f"pid {pid} runs in namespace {where}, where an earlier "
            f"netlab vagrant command started it, not in {namespace} (NETLAB_VAGRANT_NETNS)",
            where=str(pidfile), fix=f"NETLAB_VAGRANT_NETNS={where} netlab vagrant down --all, "
            f"or use NETLAB_VAGRANT_NETNS={where}")
    place = f"namespace {where}" if where else "this machine's own network namespace"
    return ProbeResult(
        f"daemon {daemon}", False, f"pid {pid} runs in {place}, not in {namespace}: VMs it "
        "started would sit on that network, so netlab will not use it", where=str(pidfile),
        fix=f"stop it (kill {pid}, or 'systemctl stop {daemon}'); netlab starts its own "
            "inside the namespace")


def check_daemons(namespace: str) -> list[ProbeResult]:
    """libvirtd and virtlogd must run inside netlab's namespace, or not at all (netlab
    then starts them there with ``-d``: no systemd needed)."""
    from netlab.vagrant.infra import DAEMON_PIDFILES

    if not all(shutil.which(daemon) for daemon in DAEMON_PIDFILES):
        return []  # not installed: the tools' row says so
    rows = []
    ours = _net_inode(f"/run/netns/{namespace}")
    by_hand = (f"by hand (no systemd needed): ip netns add {namespace}; ip netns exec "
               f"{namespace} virtlogd -d; ip netns exec {namespace} libvirtd -d")
    for daemon, pidfile in DAEMON_PIDFILES.items():
        pid = _pid_in(pidfile)
        if pid is None:
            rows.append(ProbeResult(f"daemon {daemon}", True,
                                    f"not running: 'up' starts '{daemon} -d' in namespace "
                                    f"{namespace} itself", fix=by_hand))
        elif ours is not None and _net_inode(f"/proc/{pid}/ns/net") == ours:
            rows.append(ProbeResult(f"daemon {daemon}", True,
                                    f"pid {pid}, in netlab's namespace {namespace}"))
        else:
            rows.append(_elsewhere(daemon, pid, pidfile, namespace))
    active = _systemd_active()
    if active:
        rows.append(ProbeResult(
            "systemd libvirt", False, f"systemd runs {', '.join(active)}: it would answer "
            "libvirt's socket outside netlab's namespace", where="systemctl",
            fix=f"systemctl disable --now {' '.join(SYSTEMD_UNITS)}"))
    return rows


def check_kvm(driver: str) -> list[ProbeResult]:
    """QEMU TCG needs no /dev/kvm; libvirt still probes it, and stalls ~50 s a call when the
    kvm group cannot open it, so netlab sets root:kvm 0660 during VM runs."""
    kvm = Path("/dev/kvm")
    need = driver == "kvm"
    if not kvm.exists():
        return [ProbeResult("/dev/kvm", not need,
                            "missing" + (": --driver kvm needs it" if need else
                                         ": fine, --driver qemu (TCG) emulates the CPU"),
                            fix="load kvm (modprobe kvm_intel or kvm_amd), or use --driver qemu",
                            where="/dev/kvm", severity="error" if need else "info")]
    info = kvm.stat()
    try:
        gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return [ProbeResult("/dev/kvm", False, "there is no 'kvm' group: libvirt calls stall "
                            "about 50 s each when its qemu user cannot open /dev/kvm",
                            fix="groupadd --system kvm (netlab then sets root:kvm 0660)",
                            where="/etc/group", severity="warning")]
    mode = stat.filemode(info.st_mode)
    if info.st_gid == gid and info.st_mode & 0o060 == 0o060:
        return [ProbeResult("/dev/kvm", True, f"{mode} group kvm")]
    return [ProbeResult("/dev/kvm", True,
                        f"{mode} gid {info.st_gid}: netlab sets root:kvm 0660 during VM runs and "
                        "restores this on 'down --all' (by hand: chgrp kvm /dev/kvm && "
                        "chmod 660 /dev/kvm)")]


def box_listed(listing: str, box: str) -> bool:
    """``vagrant box list``: ``NAME (PROVIDER, VERSION)`` rows; the box for libvirt?"""
    return any(line.split()[:1] == [box] and "libvirt" in line for line in listing.splitlines())


def check_box(box: str, *, buildable: bool) -> tuple[list[ProbeResult], bool]:
    """The box's row where vagrant can say, and whether ``up`` will build it first
    (netlab's own box, missing, or unknown because vagrant itself is missing)."""
    from netlab.vagrant.topology import DEFAULT_BOX

    if shutil.which("vagrant") is None:
        return [], box == DEFAULT_BOX
    try:
        listing = subprocess.run(["vagrant", "box", "list"], capture_output=True, text=True,
                                 timeout=120, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [ProbeResult("box", False, f"'vagrant box list' failed: {exc}",
                            fix="run 'vagrant box list' to see why", where="vagrant")], False
    if box_listed(listing, box):
        return [ProbeResult("box", True, f"{box} (libvirt)")], False
    if box == DEFAULT_BOX:
        if buildable:
            return [ProbeResult("box", True, f"{box} is not built yet: 'up' builds it first "
                                "(about 2.5 min, once)")], True
        return [ProbeResult("box", False, f"{box} (libvirt) is not built yet",
                            fix="sudo netlab vagrant box (about 2.5 min, once; 'up' also "
                                "builds it)", where="vagrant box list")], True
    return [ProbeResult("box", False, f"{box} (libvirt) is not installed",
                        fix=f"vagrant box add {box} --provider libvirt, or use --box {DEFAULT_BOX}",
                        where="vagrant box list")], False


def check_wheels() -> ProbeResult:
    from netlab.vagrant.orchestrate import WHEELS, wheels_dir

    folder = wheels_dir()
    have = {p.name.split("-")[0].lower() for p in folder.glob("*.whl")}
    missing = [name for name in WHEELS if name not in have]
    if not missing:
        return ProbeResult("wheels", True, f"{folder}")
    return ProbeResult("wheels", False, f"{folder} lacks {', '.join(missing)}: fetched with pip "
                       "on the first 'up' (the VMs install them offline)",
                       fix="sudo netlab vagrant box", where=str(folder), severity="warning")


def check_memory(vms: int, memory_mb: int) -> ProbeResult:
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available_mb = next(int(line.split()[1]) // 1024 for line in meminfo.splitlines()
                            if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return ProbeResult("memory", False, "MemAvailable unreadable", severity="info")
    per_vm = memory_mb + VM_OVERHEAD_MB
    room = available_mb // per_vm
    detail = (f"{available_mb} MB available: room for {room} VM(s) of {memory_mb} MB "
              f"(about {per_vm} MB each under QEMU TCG)")
    if room >= vms:
        return ProbeResult("memory", True, detail)
    return ProbeResult("memory", False, detail + f"; {vms} wanted", where="/proc/meminfo",
                       fix="use --memory 512, fewer hosts, or free memory",
                       severity="warning")


def checks(command: str, *, box: str | None = None, driver: str = "qemu",
           vms: int | None = None, memory_mb: int | None = None) -> list[ProbeResult]:
    """Every row ``command`` depends on (``doctor``: all of them)."""
    from netlab.vagrant.infra import namespace_name
    from netlab.vagrant.topology import DEFAULT_BOX, DEFAULT_MAX_VMS, DEFAULT_MEMORY_MB

    uses = set(COMMAND_USES[command])
    box_rows: list[ProbeResult] = []
    if uses & {"vms", "box"}:
        box_rows, to_build = check_box(box or DEFAULT_BOX, buildable=command != "doctor")
        if to_build:
            uses.add("box")  # 'up' builds it: its tools are needed now
    rows = [check_root(command), *check_tools(uses)]
    if uses & {"vms", "box"}:
        rows += check_plugin()
    if "vms" in uses:
        rows += check_daemons(namespace_name())
        rows += check_kvm(driver)
        rows.append(check_memory(vms or DEFAULT_MAX_VMS, memory_mb or DEFAULT_MEMORY_MB))
    if uses & {"vms", "box"}:
        rows += box_rows
        rows.append(check_wheels())
    return rows


def merge_tools(failures: list[ProbeResult]) -> list[ProbeResult]:
    """Missing tools as one row with one install line: the fix a newcomer copies."""
    tools = [f for f in failures if f.name.startswith(("tool ", "file "))]
    if not tools:
        return failures
    commands = [f.name.split(" ", 1)[1] for f in tools]
    packages = [package for f in tools for package in (f.fix or "").split(APT, 1)[-1].split()]
    merged = ProbeResult("tools", False, f"missing {', '.join(commands)}",
                         fix=install_fix(packages), where=tools[0].where)
    first = failures.index(tools[0])
    rest = [f for f in failures if f not in tools]
    return [*rest[:first], merged, *rest[first:]]


class VmPreflightError(PreflightError):
    """What a ``netlab vagrant`` command lacks, every problem at once, before it starts."""

    def __init__(self, command: str, failures: list[ProbeResult]) -> None:
        super().__init__(failures)
        count = len(failures)
        self.what = (f"netlab vagrant {command} cannot start: {count} problem"
                     f"{'s' if count != 1 else ''} (see 'netlab vagrant doctor'); "
                     "nothing was created")
        self.args = (self.what,)


def require(command: str, *, box: str | None = None, driver: str = "qemu",
            vms: int | None = None, memory_mb: int | None = None) -> None:
    """Raise one error naming every failed row's what, where and fix."""
    failures = [row for row in checks(command, box=box, driver=driver, vms=vms,
                                      memory_mb=memory_mb) if row.failed]
    if failures:
        raise VmPreflightError(command, merge_tools(failures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netlab.vagrant.doctor",
                                     description="The Debian packages the VM path needs.")
    parser.add_argument("--packages", action="store_true", required=True,
                        help="print them on one line (install.sh --vagrant installs these)")
    parser.parse_args(argv)
    print(" ".join(apt_packages()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
