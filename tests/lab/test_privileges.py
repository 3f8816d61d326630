"""Lab children run unprivileged: endpoints and a scenario's estimator plugin get
the sudo caller's or netlab's own uid after entering their namespace, keep no
capability unless their flow needs one, and cannot write where only root may;
children start with ``python -P`` in a fixed directory, so a hostile package in
the caller's working directory is never imported."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netlab.errors import NetlabError
from netlab.lab import netns, privileges, state
from netlab.lab.teardown import own_namespace_inodes
from tests.lab.scenarios import unique_lab

CAP_NET_ADMIN_MASK = 1 << privileges.CAPABILITIES["net_admin"]

PLUGIN = '''
import json
import os

PROBE = "@PROBE@"


class Estimator(object):
    """Reports who it runs as, then tries what only root may do."""

    def __init__(self):
        status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
        found = {"uid": status["Uid"].split(), "gid": status["Gid"].split(),
                 "cap_eff": int(status["CapEff"], 16), "cwd": os.getcwd()}
        for name, path, mode in (("write", PROBE, "w"), ("shadow", "/etc/shadow", "r")):
            try:
                with open(path, mode) as handle:
                    handle.write("a plugin was here") if mode == "w" else handle.read()
                found[name] = "allowed"
            except OSError as exc:
                found[name] = type(exc).__name__
        self.found = found

    def report_states(self, stats):
        pass

    def get_estimated_bandwidth(self):
        # constructed and polled in its own folder, as AlphaRTC runs it
        with open("plugin-identity.json", "w") as out:
            json.dump({**self.found, "poll_cwd": os.getcwd()}, out)
        return 1000000
'''


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _restricted_cc() -> str | None:
    """A congestion control the kernel reserves to CAP_NET_ADMIN here, if any."""
    available = Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()
    allowed = privileges.allowed_congestion_controls()
    return next((cc for cc in available if cc not in allowed), None)


def _watch_endpoints(lab: str, proc: subprocess.Popen[str]) -> dict[str, dict[str, str]]:
    """/proc/PID/status of every endpoint process seen in the lab's namespaces, by
    module and flow directory, until the run ends."""
    seen: dict[str, dict[str, str]] = {}
    while proc.poll() is None:
        recorded = state.load(lab)
        for pid in netns.pids_inside(own_namespace_inodes(recorded) if recorded else set()):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                if not any(a.startswith("endpoints.") for a in argv):
                    continue
                key = " ".join(a for a in argv if a.startswith("endpoints.")) + " " + \
                    argv[argv.index("--log-dir") + 1]
                seen.setdefault(key, _status(pid))
            except (OSError, ValueError):
                continue  # exited between the listing and the read
        time.sleep(0.1)
    return seen


def test_endpoints_and_plugin_run_unprivileged(tmp_path: Path) -> None:
    probe = Path(f"/etc/netlab-plugin-probe-{os.getpid()}")
    plugin = tmp_path / "plugin" / "BandwidthEstimator.py"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN.replace("@PROBE@", str(probe)))
    restricted = _restricted_cc()
    name = unique_lab("priv")
    scenario = tmp_path / "priv.yaml"
    scenario.write_text(f"""
name: {name}
duration: 8s
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    rate: 20Mbit
flows:
  - kind: rtc
    from: alice
    to: bob
    estimator: plugin:plugin/BandwidthEstimator.py
  - kind: tcp
    from: alice
    to: bob
    cc: reno
    rate: 2Mbit
""" + (f"""  - kind: tcp
    from: bob
    to: alice
    cc: {restricted}
    rate: 2Mbit
""" if restricted else ""))
    expected = privileges.resolve()
    assert not expected.is_root
    os.chown(plugin.parent, expected.uid, expected.gid)  # a user's plugin folder is theirs
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "netlab.cli.main", "run", "-q", "--no-plots",
                             "--out", str(out), str(scenario)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        seen = _watch_endpoints(name, proc)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run([sys.executable, "-m", "netlab.cli.main", "down", name],
                       capture_output=True, check=False)
        written = probe.exists()
        probe.unlink(missing_ok=True)
    assert proc.returncode == 0, stderr
    flows = 3 if restricted else 2
    assert len(seen) == 2 * flows, sorted(seen)  # every sender and receiver was seen
    for key, status in seen.items():
        assert status["Uid"].split() == [str(expected.uid)] * 4, (key, status["Uid"])
        assert status["Gid"].split() == [str(expected.gid)] * 4, (key, status["Gid"])
        assert status["NoNewPrivs"] == "1", key
        kept = CAP_NET_ADMIN_MASK if restricted and f"tcp-2{os.sep}sender" in key else 0
        for field in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
            assert int(status[field], 16) == kept, (key, field, status[field])

    (run_dir,) = out.iterdir()
    receiver = run_dir / "flows" / "rtc-0" / "receiver"
    identity = json.loads((tmp_path / "plugin" / "plugin-identity.json").read_text())
    assert identity["uid"] == [str(expected.uid)] * 4 and identity["cap_eff"] == 0
    assert identity["cwd"] == str(tmp_path / "plugin")  # constructed in its folder
    assert identity["poll_cwd"] == str(tmp_path / "plugin")  # it stays there (AlphaRTC's cwd)
    assert identity["write"] == "PermissionError" and not written
    assert identity["shadow"] == "PermissionError"
    assert receiver.stat().st_uid == expected.uid  # its directory is its own
    results = json.loads((run_dir / "results.json").read_text())
    rates = {f["id"]: f["metrics"]["recv_rate_bps"] for f in results["flows"]}
    assert rates["rtc-0"] > 5e4 and rates["tcp-1"] > 1e6, rates  # both really ran
    if restricted:  # the kernel let the sender use its restricted cc: it kept CAP_NET_ADMIN
        assert rates["tcp-2"] > 1e6, rates


HOSTILE = "open({marker!r}, 'a').write(__name__ + ' imported from the caller cwd\\n')\n"


def test_children_never_import_from_the_callers_cwd(tmp_path: Path) -> None:
    """A caller's cwd holding packages named like netlab's: no child imports them."""
    hostile, marker = tmp_path / "hostile", tmp_path / "imported.txt"
    for package in ("endpoints", "shaping", "netlab"):
        (hostile / package).mkdir(parents=True)
        (hostile / package / "__init__.py").write_text(HOSTILE.format(marker=str(marker)))
    name = unique_lab("cwd")
    scenario = tmp_path / "cwd.yaml"
    scenario.write_text(f"""
name: {name}
duration: 5s
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    rate: 10Mbit
    delay: 5ms
flows:
  - kind: rtc
    from: alice
    to: bob
    estimator: fixed:1Mbit
  - kind: tcp
    from: bob
    to: alice
    cc: reno
""")
    # the console script `netlab` puts its own directory, not the cwd, on sys.path: -P
    done = subprocess.run([sys.executable, "-P", "-m", "netlab.cli.main", "run", "-q",
                           "--out", str(tmp_path / "runs"), "--backend", "user",
                           str(scenario)], cwd=hostile, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), marker.read_text()
    (run_dir,) = (tmp_path / "runs").iterdir()
    flows = {f["id"]: f for f in json.loads((run_dir / "results.json").read_text())["flows"]}
    assert flows["rtc-0"]["metrics"]["recv_rate_bps"] > 5e4  # the children really ran


def test_the_user_is_the_sudo_caller_else_netlab() -> None:
    nobody = pwd.getpwnam("nobody")
    caller = privileges.resolve(environ={"SUDO_UID": str(nobody.pw_uid),
                                         "SUDO_GID": str(nobody.pw_gid)})
    assert (caller.name, caller.uid, caller.gid) == ("nobody", nobody.pw_uid, nobody.pw_gid)
    assert privileges.resolve(environ={"SUDO_UID": "0", "SUDO_GID": "0"}).name == "netlab"
    assert privileges.resolve(environ={}).name == "netlab"
    assert privileges.resolve("root") == privileges.ROOT
    assert privileges.resolve("root").with_caps("net_admin") == privileges.ROOT
    with pytest.raises(NetlabError) as error:
        privileges.resolve("no-such-user-here", where="hosts.bob.user")
    assert error.value.render() == (
        "error: user 'no-such-user-here' does not exist on this machine\n"
        "  where: hosts.bob.user\n"
        "  fix: name an existing user, or `root` to keep root's privileges")


def test_the_system_user_is_created_once_and_recorded(tmp_path: Path) -> None:
    first = privileges.system_user(record=tmp_path / "user.json")
    again = privileges.system_user(record=tmp_path / "again.json")
    assert first == again and first.uid != 0 and first.name == "netlab"
    assert not (tmp_path / "again.json").exists()  # only a creation is recorded
    entry = pwd.getpwnam("netlab")
    assert entry.pw_shell.endswith("nologin") and entry.pw_uid < 1000  # a system account
    if privileges.USER_RECORD.exists():  # made by netlab on this machine, not by hand
        assert json.loads(privileges.USER_RECORD.read_text())["uid"] == entry.pw_uid


def test_only_unreachable_directories_are_masked(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    (closed / "inner" / "work").mkdir(parents=True)
    (closed / "other").mkdir()
    (closed / "link").symlink_to(closed / "inner")
    closed.chmod(0o700)
    who = privileges.RunAs("nobody", 65534, 65534, (65534,))
    masks = privileges.masks_for([closed / "link" / "work", Path("/usr/bin")], who)
    mine = [m for m in masks if m.directory == str(closed)]
    assert mine == [privileges.Mask(str(closed), (("inner", None), ("link", str(closed /
                                                                              "inner"))))]
    assert all(m.directory not in ("/", "/usr") for m in masks)  # /usr is open to everyone
    assert privileges.masks_for([closed / "inner"], privileges.ROOT) == ()


def test_a_plugin_its_user_cannot_read_is_refused_before_the_run(tmp_path: Path) -> None:
    plugin = tmp_path / "BandwidthEstimator.py"
    plugin.write_text("class Estimator(object):\n    pass\n")
    plugin.chmod(0o600)  # root's alone
    who = privileges.resolve()
    with pytest.raises(NetlabError) as error:
        privileges.require_readable(plugin, who, "flows[0].estimator (rtc-0)")
    assert error.value.render() == (
        f"error: {plugin} is not readable by {who.name}, who runs this host's flows\n"
        "  where: flows[0].estimator (rtc-0)\n"
        f"  fix: `chmod a+r {plugin}`, or set `user: root` on the host to keep root's "
        "privileges")
    plugin.chmod(0o644)
    privileges.require_readable(plugin, who, "flows[0].estimator (rtc-0)")
    privileges.require_readable(plugin, privileges.ROOT, "-")


def test_a_host_may_ask_for_a_user(tmp_path: Path) -> None:
    from netlab.scenario import load_scenario

    path = tmp_path / "users.yaml"
    path.write_text("name: users\nduration: 1s\nhosts:\n  alice: {user: root}\n  bob:\n"
                    "links:\n  - endpoints: [alice, bob]\n")
    scenario = load_scenario(path)
    assert scenario.host("alice").user == "root" and scenario.host("bob").user is None
    assert privileges.resolve(scenario.host("alice").user).is_root
