"""What this kernel can really do, found by asking it.

``lsmod`` misses built-in code and /proc/modules may not exist at all, so
every feature is probed by trying it: each qdisc is added to the loopback
device of a throwaway network namespace (``nl-probe-<pid>-<random>``), link
kinds are created there, and a TUN device is opened from a thread that has
entered that namespace.  The namespace is removed on every exit path; one
left behind by a SIGKILLed probe is swept by the next probe (its pid is dead).

A probe costs 20-80 ms (2 busy vCPUs); the result is cached for the process and on disk
(``<run root>/.caps.json``) keyed by kernel release, boot id and the set of
loaded modules, so ``netlab up`` stays fast and a ``modprobe`` invalidates it.
TCP congestion-control lists are read live every time (three small files).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from labcore import netns as labcore_netns
from labcore.jsonfile import write_json_atomic
from labcore.netlink import IPRoute, NetlinkError, netns
from netlab import paths
from netlab.lab.state import pid_alive

PROBE_NAMESPACE_PREFIX = "nl-probe-"
# Lab namespaces are nl-<lab>.<host> and always hold a '.', which this never
# matches: the sweep can not take a lab's namespace, whatever the lab is called.
PROBE_NAMESPACE_PATTERN = re.compile(rf"{re.escape(PROBE_NAMESPACE_PREFIX)}(\d+)-[0-9a-f]+")
NETNS_DIR = Path(netns.NETNS_RUN_DIR)  # where pyroute2 and iproute2 pin namespaces
CACHE_FILE = ".caps.json"
CACHE_SCHEMA = 1

# Every kind is reported; only netem, htb and tbf drive decisions.
PROBED_QDISCS: tuple[str, ...] = ("netem", "htb", "tbf", "ingress", "fq_codel", "fq", "cake")
PROBED_LINK_KINDS: tuple[str, ...] = ("veth", "ifb", "bridge", "dummy")

# Parameters that each qdisc's init accepts (htb and tbf refuse an empty request).
_QDISC_PARAMS: Mapping[str, Mapping[str, object]] = {
    "netem": {"delay": 1000, "limit": 100},
    "htb": {"default": 0x10},
    "tbf": {"rate": "1mbit", "burst": 15000, "latency": "50ms"},
}

# linux/capability.h
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_SYS_RESOURCE = 24  # raises a hard resource limit (RLIMIT_RTPRIO's)

# linux/if_tun.h; _IOW('T', 202, int) on every architecture pyroute2 knows but ppc/mips.
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
TUN_DEVICE = "/dev/net/tun"

_PROC_IPV4 = Path("/proc/sys/net/ipv4")
_PROC_MODULES = Path("/proc/modules")
_SYS_MODULE = Path("/sys/module")


@dataclass(frozen=True)
class KernelCapabilities:
    """The kernel's answers, plus how and when they were obtained.

    ``qdiscs``/``link_kinds`` map a kind to whether the kernel accepted it;
    they are empty when ``probed`` is False (the process could not create a
    namespace; ``probe_error`` says why).  ``notes`` holds the kernel's reply
    for anything that failed, so ``netlab doctor`` can show it.
    """

    kernel_release: str
    boot_id: str
    probed: bool
    probe_error: str | None = None
    qdiscs: dict[str, bool] = field(default_factory=dict)
    link_kinds: dict[str, bool] = field(default_factory=dict)
    tun: bool | None = None
    setns: bool | None = None
    notes: dict[str, str] = field(default_factory=dict)
    tcp_cc_available: tuple[str, ...] = ()
    tcp_cc_allowed: tuple[str, ...] = ()
    tcp_cc_default: str | None = None
    probe_seconds: float = 0.0
    from_cache: bool = False

    def has_qdisc(self, kind: str) -> bool:
        """Whether the kernel accepted ``kind``; False when it was not probed."""
        return self.probed and self.qdiscs.get(kind, False)

    def has_link_kind(self, kind: str) -> bool:
        return self.probed and self.link_kinds.get(kind, False)

    @property
    def netem(self) -> bool:
        return self.has_qdisc("netem")

    @property
    def rate_shaper(self) -> bool:
        """htb or tbf: what the kernel backend shapes rate with."""
        return self.has_qdisc("htb") or self.has_qdisc("tbf")

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel_release": self.kernel_release,
            "boot_id": self.boot_id,
            "probed": self.probed,
            "probe_error": self.probe_error,
            "qdiscs": dict(self.qdiscs),
            "link_kinds": dict(self.link_kinds),
            "tun": self.tun,
            "setns": self.setns,
            "notes": dict(self.notes),
            "tcp_cc_available": list(self.tcp_cc_available),
            "tcp_cc_allowed": list(self.tcp_cc_allowed),
            "tcp_cc_default": self.tcp_cc_default,
            "probe_seconds": self.probe_seconds,
            "from_cache": self.from_cache,
        }


# --------------------------------------------------------------------- privileges


def effective_capabilities() -> int | None:
    """The CapEff bit mask of this process; None when /proc does not say."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)$", status, re.MULTILINE)
    return int(match.group(1), 16) if match else None


def has_capability(bit: int) -> bool:
    """Whether the kernel will grant ``bit``: CapEff decides, not the uid
    (root in a container may lack CAP_NET_ADMIN; only without /proc does
    euid 0 stand in for it)."""
    mask = effective_capabilities()
    if mask is None:
        return os.geteuid() == 0
    return bool(mask >> bit & 1)


def can_admin_network() -> bool:
    return has_capability(CAP_NET_ADMIN)


def can_enter_namespaces() -> bool:
    """CAP_SYS_ADMIN: setns(2) and the bind mount that pins a named namespace."""
    return has_capability(CAP_SYS_ADMIN)


# --------------------------------------------------------------------- identity


def kernel_release() -> str:
    return os.uname().release


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def modules_fingerprint() -> str:
    """Hash of the loaded-module names: a ``modprobe`` changes it.

    Kernels without module support have no /proc/modules; nothing can be
    loaded there, so a constant is right.
    """
    try:
        lines = _PROC_MODULES.read_text().splitlines()
    except OSError:
        return "no-modules"
    names = sorted(line.split(" ", 1)[0] for line in lines if line)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


# --------------------------------------------------------------------- TCP CC


def _read_words(path: Path) -> tuple[str, ...]:
    try:
        return tuple(path.read_text().split())
    except OSError:
        return ()


def tcp_congestion_controls() -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """(available, allowed, default).

    ``allowed`` limits what unprivileged sockets may pick; a process with
    CAP_NET_ADMIN can set any available one (and the kernel autoloads
    ``tcp_<name>`` modules for it).
    """
    default = _read_words(_PROC_IPV4 / "tcp_congestion_control")
    return (
        _read_words(_PROC_IPV4 / "tcp_available_congestion_control"),
        _read_words(_PROC_IPV4 / "tcp_allowed_congestion_control"),
        default[0] if default else None,
    )


# --------------------------------------------------------------------- probing


def probe_namespace_name() -> str:
    return f"{PROBE_NAMESPACE_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"


def _remove_namespace(name: str) -> None:
    """Remove a namespace this module made; a half-made one too."""
    with contextlib.suppress(FileNotFoundError):
        netns.remove(name)


def sweep_stale_probe_namespaces() -> list[str]:
    """Remove ``nl-probe-<pid>-*`` namespaces whose process is gone (SIGKILL mid-probe)."""
    removed = []
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return []
    for name in names:
        match = PROBE_NAMESPACE_PATTERN.fullmatch(name)
        if match and not pid_alive(int(match.group(1))):
            try:
                _remove_namespace(name)
            except OSError:
                continue
            removed.append(name)
    return removed


def _probe_qdisc(ipr: IPRoute, index: int, kind: str) -> tuple[bool, str | None]:
    """Add ``kind`` as the root (or ingress) qdisc of ``index`` and remove it.

    The kernel answers ENOENT when the kind is unknown (not built, module
    missing); EAGAIN means it just loaded the module and wants a replay.
    """
    params = dict(_QDISC_PARAMS.get(kind, {}))
    for _attempt in range(3):
        try:
            handle = "ffff:" if kind == "ingress" else "1:"
            ipr.tc("add", kind, index=index, handle=handle, **params)
        except NetlinkError as exc:
            if exc.code == errno.EAGAIN:
                continue
            if exc.code == errno.ENOENT:
                return False, "kernel: unknown qdisc kind (ENOENT)"
            symbol = errno.errorcode.get(exc.code, str(exc.code))
            return False, f"kernel refused it: {os.strerror(exc.code)} ({symbol})"
        if kind == "ingress":
            ipr.tc("del", "ingress", index=index, handle="ffff:")
        else:
            ipr.tc("del", index=index, handle="1:", root=True)
        return True, None
    return False, "kernel kept answering EAGAIN"


# Modules whose init creates devices in the root namespace (numifbs=2, numdummies=1).
_ROOT_DEVICE_MODULES: Mapping[str, str] = {"ifb": "numifbs", "dummy": "numdummies"}


def _loading_would_touch_root_namespace(kind: str) -> bool:
    """Whether creating ``kind`` would load a module that adds devices to the host.

    On a kernel with loadable modules where ifb/dummy is not loaded yet,
    creating one even in the probe namespace leaves ifb0/ifb1 (dummy0) in
    the root namespace, so that probe is skipped; built-in or already
    loaded ones are probed normally.
    """
    if kind not in _ROOT_DEVICE_MODULES or (_SYS_MODULE / kind).exists():
        return False
    try:
        loaded = _PROC_MODULES.read_text()
    except OSError:
        return False  # no module support: built in or absent
    return not any(line.startswith(f"{kind} ") for line in loaded.splitlines())


def _probe_link_kind(ipr: IPRoute, kind: str, number: int) -> tuple[bool, str | None]:
    if _loading_would_touch_root_namespace(kind):
        return False, (
            "module not loaded; not probed, because loading it creates devices in the root "
            f"namespace (`modprobe {kind} {_ROOT_DEVICE_MODULES[kind]}=0` loads it without them)"
        )
    name = f"probe{number}"
    extra: dict[str, object] = {"peer": f"{name}p"} if kind == "veth" else {}
    try:
        ipr.link("add", ifname=name, kind=kind, **extra)
    except NetlinkError as exc:
        if exc.code == errno.EOPNOTSUPP:
            return False, "kernel: unknown link kind (EOPNOTSUPP)"
        return False, f"kernel refused it: {os.strerror(exc.code)}"
    return True, None  # removed with the namespace


def _in_namespace(path: Path, job: Callable[[], None]) -> None:
    """Run ``job`` on a thread that has entered the namespace at ``path`` (it ends
    with the job, so the rest of the process never leaves its namespace)."""
    labcore_netns.in_thread(path, job, name="netlab-probe-ns")


def open_tun(name: str, on_open: Callable[[], None] | None = None) -> None:
    """Create a non-persistent TUN device ``name`` in the current thread's namespace.

    It vanishes when the descriptor closes; ``on_open`` runs while it exists.
    """
    fd = os.open(TUN_DEVICE, os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        if on_open is not None:
            on_open()
    finally:
        os.close(fd)


def probe_tun(namespace: str, on_open: Callable[[], None] | None = None) -> tuple[bool, str | None]:
    """Open a TUN device inside ``namespace`` (never in the caller's own)."""
    path = NETNS_DIR / namespace
    try:
        _in_namespace(path, lambda: open_tun("probetun0", on_open))
    except OSError as exc:
        if exc.filename == TUN_DEVICE:
            return False, f"{TUN_DEVICE}: {exc.strerror}"
        if exc.filename == str(path):
            return False, f"namespace {namespace}: {exc.strerror}"
        return False, f"TUNSETIFF: {exc.strerror or exc}"
    return True, None


@dataclass
class _Findings:
    qdiscs: dict[str, bool] = field(default_factory=dict)
    link_kinds: dict[str, bool] = field(default_factory=dict)
    tun: bool | None = None
    setns: bool | None = None
    notes: dict[str, str] = field(default_factory=dict)


def _probe_in(namespace: str, found: _Findings) -> None:
    with IPRoute(netns=namespace, flags=0) as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=lo, state="up")
        for kind in PROBED_QDISCS:
            ok, note = _probe_qdisc(ipr, lo, kind)
            found.qdiscs[kind] = ok
            if note:
                found.notes[f"qdisc {kind}"] = note
        for number, kind in enumerate(PROBED_LINK_KINDS):
            ok, note = _probe_link_kind(ipr, kind, number)
            found.link_kinds[kind] = ok
            if note:
                found.notes[f"link {kind}"] = note
    # Entering the namespace is itself the setns probe (CAP_SYS_ADMIN).
    try:
        _in_namespace(NETNS_DIR / namespace, lambda: None)
        found.setns = True
    except OSError as exc:
        found.setns = False
        found.notes["setns"] = str(exc)
    if found.setns:
        found.tun, tun_note = probe_tun(namespace)
        if tun_note:
            found.notes["tun"] = tun_note
    else:
        found.tun = None


def _probe_features() -> _Findings:
    """Create the throwaway namespace, probe in it, and always remove it."""
    sweep_stale_probe_namespaces()
    name = probe_namespace_name()
    found = _Findings()
    try:
        netns.create(name)
        _probe_in(name, found)
    finally:
        _remove_namespace(name)
    return found


# --------------------------------------------------------------------- caching

_process_cache: KernelCapabilities | None = None
_process_cache_lock = threading.Lock()


def cache_path() -> Path:
    return paths.run_root() / CACHE_FILE


def _cache_key() -> dict[str, object]:
    return {
        "schema": CACHE_SCHEMA,
        "kernel_release": kernel_release(),
        "boot_id": boot_id(),
        "modules": modules_fingerprint(),
    }


def _load_disk_cache() -> KernelCapabilities | None:
    try:
        data = json.loads(cache_path().read_text())
        if data.get("key") != _cache_key():
            return None
        caps = data["caps"]
        return KernelCapabilities(
            kernel_release=str(caps["kernel_release"]),
            boot_id=str(caps["boot_id"]),
            probed=True,
            qdiscs={str(k): bool(v) for k, v in caps["qdiscs"].items()},
            link_kinds={str(k): bool(v) for k, v in caps["link_kinds"].items()},
            tun=None if caps["tun"] is None else bool(caps["tun"]),
            setns=None if caps["setns"] is None else bool(caps["setns"]),
            notes={str(k): str(v) for k, v in caps.get("notes", {}).items()},
            probe_seconds=float(caps.get("probe_seconds", 0.0)),
            from_cache=True,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _store_disk_cache(caps: KernelCapabilities) -> None:
    """Best effort: a read-only run root only costs the next process a probe."""
    target = cache_path()
    with contextlib.suppress(OSError):
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(target, {"key": _cache_key(), "caps": caps.to_json()}, indent=1)


def _with_live_tcp(caps: KernelCapabilities) -> KernelCapabilities:
    available, allowed, default = tcp_congestion_controls()
    return replace(
        caps, tcp_cc_available=available, tcp_cc_allowed=allowed, tcp_cc_default=default
    )


def probe_kernel(refresh: bool = False, *, use_disk_cache: bool = True) -> KernelCapabilities:
    """The kernel's capabilities, probed once per process (and per boot on disk).

    ``refresh`` forces a new probe (``netlab doctor`` does).  Without
    CAP_NET_ADMIN/CAP_SYS_ADMIN nothing can be probed; the result then says
    so (``probed=False``) unless a privileged run left a valid disk cache.
    """
    global _process_cache
    with _process_cache_lock:
        if _process_cache is not None and not refresh:
            return _with_live_tcp(_process_cache)
        if not refresh and use_disk_cache:
            cached = _load_disk_cache()
            if cached is not None:
                _process_cache = cached
                return _with_live_tcp(cached)
        started = time.perf_counter()
        if not (can_admin_network() and can_enter_namespaces()):
            caps = KernelCapabilities(
                kernel_release=kernel_release(),
                boot_id=boot_id(),
                probed=False,
                probe_error=(
                    "needs CAP_NET_ADMIN and CAP_SYS_ADMIN (root) to create a probe namespace"
                ),
            )
            return _with_live_tcp(caps)
        try:
            found = _probe_features()
            if not found.setns:
                # seen once under heavy concurrent namespace churn: entering the
                # fresh probe namespace failed (ENOENT); a second probe settles it
                found = _probe_features()
        except (OSError, NetlinkError) as exc:
            caps = KernelCapabilities(
                kernel_release=kernel_release(),
                boot_id=boot_id(),
                probed=False,
                probe_error=f"probe namespace failed: {exc}",
                probe_seconds=time.perf_counter() - started,
            )
            return _with_live_tcp(caps)
        caps = KernelCapabilities(
            kernel_release=kernel_release(),
            boot_id=boot_id(),
            probed=True,
            qdiscs=found.qdiscs,
            link_kinds=found.link_kinds,
            tun=found.tun,
            setns=found.setns,
            notes=found.notes,
            probe_seconds=time.perf_counter() - started,
        )
        if caps.setns and caps.tun is not None:  # only a complete probe is worth keeping
            _process_cache = caps
            if use_disk_cache:
                _store_disk_cache(caps)
        return _with_live_tcp(caps)


def forget_cached() -> None:
    """Drop the per-process result (tests; after loading a module)."""
    global _process_cache
    with _process_cache_lock:
        _process_cache = None
