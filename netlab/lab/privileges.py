"""Who a lab's child processes run as, and the steps that put them there.

netlab needs root to build namespaces and links; the programs it runs inside them
(RTC and TCP endpoints, a scenario's estimator plugin, command flows) do not. Each
child enters its host's namespace as root, then drops to an unprivileged user
before exec: the ``sudo`` caller (SUDO_UID/SUDO_GID), else the dedicated system
user ``netlab``, unless the scenario's host says ``user: root``.  What a child still
needs is granted by name: ownership of its own directory, CAP_NET_ADMIN as an
ambient capability for a TCP sender whose congestion control is outside
``net.ipv4.tcp_allowed_congestion_control`` (a machine-wide list netlab never
widens), the right to raise a thread to the real-time rung of a decision wait
(:data:`labcore.priority.DECISION_WAIT`) for a flow that talks to a policy agent
(``RLIMIT_RTPRIO``, or CAP_SYS_NICE where root may not raise that limit), and
nothing else; the bounding set is emptied and no_new_privs set, so a setuid
program cannot take root back.

A dedicated user, not ``nobody``: every daemon running as ``nobody`` may signal
or ptrace every other one, so a plugin running as ``nobody`` could reach them
(systemd.exec(5), "User=", warns against ``nobody`` for this reason).

Where the interpreter, the code or the run directory lies under a directory the
user may not enter (root's 0700 home, pytest's 0700 temporary root), the child
gets a private mount namespace in which that directory is a small tmpfs holding
only the entries on those paths, bind-mounted from the originals: the child can
reach what it runs and writes, and sees nothing else there.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import resource
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from labcore.jsonfile import write_json_atomic
from netlab import __version__
from netlab.errors import NetlabError
from netlab.lab import netns

SYSTEM_USER = "netlab"
#: Where netlab notes that it created :data:`SYSTEM_USER` (``userdel netlab`` undoes it).
USER_RECORD = Path("/var/lib/netlab/system-user.json")
ALLOWED_CC = Path("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
#: linux/capability.h; only the capabilities a child may be granted are named.
CAPABILITIES = {"net_admin": 12, "sys_nice": 23}
#: The packages' root, put on children's PYTHONPATH: children start with ``-P``
#: (no cwd on sys.path), so an uninstalled checkout must be named explicitly.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_SLAVE = 2, 4, 4096, 16384, 1 << 19
_PR_SET_KEEPCAPS, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 8, 24, 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE = 47, 2
_CAP_VERSION_3 = 0x20080522
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class RunAs:
    """A child's identity: user, groups and the capabilities it keeps."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    caps: frozenset[str] = field(default_factory=frozenset)
    #: the highest SCHED_FIFO priority it may take itself (RLIMIT_RTPRIO; 0: none)
    rtprio: int = 0

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def with_rtprio(self, priority: int) -> RunAs:
        """The same user allowed SCHED_FIFO up to ``priority`` (root may anyway):
        by ``RLIMIT_RTPRIO`` where this process may raise that limit, else (a
        container whose root lacks CAP_SYS_RESOURCE and whose limit is 0) by
        keeping CAP_SYS_NICE, the only other way to it."""
        if self.is_root:
            return self
        if _may_grant_rtprio(priority):
            return replace(self, rtprio=max(self.rtprio, priority))
        return self.with_caps("sys_nice")

    def with_caps(self, *caps: str) -> RunAs:
        """The same user keeping ``caps`` too (root keeps everything anyway)."""
        return self if self.is_root else replace(self, caps=self.caps | frozenset(caps))

    def describe(self) -> dict[str, object]:
        return {"user": self.name, "uid": self.uid, "gid": self.gid, "caps": sorted(self.caps),
                **({"rtprio": self.rtprio} if self.rtprio else {})}


ROOT = RunAs("root", 0, 0)


def _may_grant_rtprio(priority: int) -> bool:
    """Whether a child can be given ``RLIMIT_RTPRIO`` ``priority``: within the hard
    limit, or with CAP_SYS_RESOURCE to raise it."""
    from netlab.preflight.capabilities import CAP_SYS_RESOURCE, has_capability

    hard = resource.getrlimit(resource.RLIMIT_RTPRIO)[1]
    return hard == resource.RLIM_INFINITY or hard >= priority or \
        has_capability(CAP_SYS_RESOURCE)


def _from_passwd(entry: pwd.struct_passwd, gid: int | None = None) -> RunAs:
    gid = entry.pw_gid if gid is None else gid
    groups = tuple(sorted(set(os.getgrouplist(entry.pw_name, gid))))
    return RunAs(entry.pw_name, entry.pw_uid, gid, groups)


def _sudo_caller(environ: Mapping[str, str]) -> RunAs | None:
    """The user who ran ``sudo netlab``; None without sudo or when root ran sudo."""
    try:
        uid, gid = int(environ["SUDO_UID"]), int(environ["SUDO_GID"])
    except (KeyError, ValueError):
        return None
    if uid == 0:
        return None
    try:
        return _from_passwd(pwd.getpwuid(uid), gid)
    except KeyError:  # a uid without a passwd entry still runs fine
        return RunAs(str(uid), uid, gid, (gid,))


def resolve(requested: str | None = None, *, where: str = "hosts.<host>.user",
            environ: Mapping[str, str] | None = None) -> RunAs:
    """The identity a host's children get: ``requested`` (a user name, or ``root``
    to keep privileges), else the sudo caller, else :data:`SYSTEM_USER`."""
    if os.geteuid() != 0:  # nothing to drop: children run as netlab itself does
        uid = os.geteuid()
        try:
            return _from_passwd(pwd.getpwuid(uid), os.getegid())
        except KeyError:
            return RunAs(str(uid), uid, os.getegid(), (os.getegid(),))
    if requested == "root":
        return ROOT
    if requested is not None:
        try:
            return _from_passwd(pwd.getpwnam(requested))
        except KeyError:
            raise NetlabError(f"user {requested!r} does not exist on this machine", where=where,
                              fix="name an existing user, or `root` to keep root's privileges"
                              ) from None
    caller = _sudo_caller(os.environ if environ is None else environ)
    return caller if caller is not None else system_user()


def system_user(name: str = SYSTEM_USER, record: Path = USER_RECORD) -> RunAs:
    """The dedicated user, created on first use: an existing one is reused and a
    concurrent creation tolerated (useradd exit 9), and a creation is recorded in
    ``record`` so the machine's owner can see what netlab added and undo it."""
    try:
        return _from_passwd(pwd.getpwnam(name))
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    fix = (f"create it (`useradd --system --user-group --no-create-home {name}`), or run "
           "netlab through sudo from your own account")
    if useradd is None:
        raise NetlabError(f"no user {name!r} to run lab processes as, and no useradd to "
                          "create it", where="/etc/passwd", fix=fix)
    done = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "netlab lab processes", name],
        capture_output=True, text=True, check=False)
    if done.returncode not in (0, 9):  # 9: the name exists (another netlab made it)
        raise NetlabError(f"cannot create the user {name!r}: {done.stderr.strip()}",
                          where="useradd", fix=fix)
    entry = pwd.getpwnam(name)
    if done.returncode == 0:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(record, {
            "user": name, "uid": entry.pw_uid, "gid": entry.pw_gid,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "by": f"netlab {__version__}", "why": "lab child processes run unprivileged",
            "undo": f"userdel {name}"}, indent=2, trailing_newline=True)
        print(f"netlab: created system user {name!r} (uid {entry.pw_uid}) for lab processes; "
              f"recorded in {record}", file=sys.stderr)
    return _from_passwd(entry)


def allowed_congestion_controls() -> frozenset[str]:
    try:
        return frozenset(ALLOWED_CC.read_text().split())
    except OSError:
        return frozenset()


def for_tcp_sender(who: RunAs, cc: str) -> RunAs:
    """A TCP sender keeps CAP_NET_ADMIN only when the kernel reserves ``cc`` to it."""
    return who if cc in allowed_congestion_controls() else who.with_caps("net_admin")


def python_argv(module: str) -> list[str]:
    """``python -P -m module``: the child's cwd never lands first on its sys.path."""
    return [sys.executable, "-P", "-m", module]


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment children get: the caller's, with the packages' root on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    entries = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(PACKAGE_ROOT) not in entries:
        entries.append(str(PACKAGE_ROOT))
    env["PYTHONPATH"] = os.pathsep.join(entries)
    return env


# ---- reaching the paths a child needs ------------------------------------------------


@dataclass(frozen=True)
class Mask:
    """A directory the child may not enter, shown as a tmpfs holding only ``keep``:
    (entry name, symlink target or None for a bind mount of the original)."""

    directory: str
    keep: tuple[tuple[str, str | None], ...]


def _can_search(st: os.stat_result, who: RunAs) -> bool:
    if who.is_root:
        return True
    if st.st_uid == who.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == who.gid or st.st_gid in who.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def runtime_paths() -> list[Path]:
    """What every Python child reads: the interpreter and its libraries, the packages."""
    found = [Path(sys.executable), Path(sys.prefix), Path(sys.base_prefix), PACKAGE_ROOT]
    found += [Path(p) for p in sys.path[1:] if p and os.path.isabs(p)]  # [0]: the caller's
    return found


def masks_for(paths: Iterable[Path], who: RunAs) -> tuple[Mask, ...]:
    """The masks that let ``who`` reach every path (and its real path), shallowest first."""
    keep: dict[str, dict[str, str | None]] = {}
    todo = [Path(os.path.abspath(p)) for p in paths]
    todo += [Path(os.path.realpath(p)) for p in todo]
    for path in todo:
        current = Path("/")
        for name in path.parts[1:]:
            try:
                st = os.stat(current)
            except OSError:
                break
            if not stat.S_ISDIR(st.st_mode):
                break
            entry = current / name
            if not _can_search(st, who):
                link = os.readlink(entry) if entry.is_symlink() else None
                keep.setdefault(str(current), {})[name] = link
            current = entry
    ordered = sorted(keep.items(), key=lambda item: len(Path(item[0]).parts))
    return tuple(Mask(d, tuple(sorted(names.items()))) for d, names in ordered)


def require_readable(path: Path, who: RunAs, where: str) -> None:
    """A file the child must read (a plugin) is readable by its user, or a clear error
    now rather than a dead process later.  Directories on the way are masked open."""
    try:
        st = os.stat(path)
    except OSError:
        return  # missing: the child reports it with its own file:line
    if not stat.S_ISREG(st.st_mode) or who.is_root:
        return
    if st.st_uid == who.uid:
        bit = stat.S_IRUSR
    elif st.st_gid == who.gid or st.st_gid in who.groups:
        bit = stat.S_IRGRP
    else:
        bit = stat.S_IROTH
    if not st.st_mode & bit:
        raise NetlabError(f"{path} is not readable by {who.name}, who runs this host's flows",
                          where=where, fix=f"`chmod a+r {path}`, or set `user: root` on the "
                          "host to keep root's privileges")


def give_path(path: Path, who: RunAs) -> None:
    """Make ``path`` (made by root) the child's own: its directory, its agent's socket."""
    if not who.is_root:
        os.chown(path, who.uid, who.gid)


# ---- in the child, between fork and exec ---------------------------------------------


def _ok(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    _ok(_libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
                    ctypes.c_ulong(0)), f"prctl({option})")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _apply_masks(masks: tuple[Mask, ...]) -> None:
    _ok(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _ok(_libc.mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None), "make / a slave mount")
    fds = {(m.directory, name): os.open(os.path.join(m.directory, name), os.O_PATH)
           for m in masks for name, link in m.keep if link is None}
    for mask in masks:
        _ok(_libc.mount(b"tmpfs", mask.directory.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                        b"mode=0755,size=64k"), f"mask {mask.directory}")
        for name, link in mask.keep:
            target = os.path.join(mask.directory, name)
            if link is not None:
                os.symlink(link, target)
                continue
            fd = fds[(mask.directory, name)]
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.mkdir(target)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
            _ok(_libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None,
                            _MS_BIND | _MS_REC, None), f"bind {target}")
    for fd in fds.values():
        os.close(fd)


def _drop(who: RunAs, last_cap: int) -> None:
    kept = {CAPABILITIES[name] for name in who.caps}
    for cap in range(last_cap + 1):
        if cap not in kept:
            _prctl(_PR_CAPBSET_DROP, cap)
    if kept:
        _prctl(_PR_SET_KEEPCAPS, 1)
    os.setgroups(list(who.groups))
    os.setresgid(who.gid, who.gid, who.gid)
    os.setresuid(who.uid, who.uid, who.uid)
    if kept:
        mask = sum(1 << cap for cap in kept)
        data = (_CapData * 2)(_CapData(mask, mask, mask), _CapData(0, 0, 0))
        _ok(_libc.capset(ctypes.byref(_CapHeader(_CAP_VERSION_3, 0)), data), "capset")
        for cap in kept:
            _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def enter_as(namespace: str, who: RunAs, workdir: Path,
             reads: Iterable[Path] = ()) -> Callable[[], None]:
    """The ``preexec_fn`` that enters ``namespace``, makes ``workdir`` and ``reads``
    reachable, drops to ``who`` and changes to ``workdir``.  Everything that can be
    computed is computed here, in the parent: the child only makes system calls."""
    drop = not who.is_root and who.uid != os.geteuid()  # already that user: nothing to drop
    masks = masks_for([*runtime_paths(), workdir, *reads], who) if drop else ()
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())

    rtprio = who.rtprio if drop else 0

    def preexec() -> None:
        netns.enter(namespace)
        if drop:
            if masks:
                _apply_masks(masks)
            if rtprio:  # set while still root: the user could not raise it
                resource.setrlimit(resource.RLIMIT_RTPRIO, (rtprio, rtprio))
            _drop(who, last_cap)
        os.chdir(workdir)
    return preexec
