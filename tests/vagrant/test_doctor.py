"""Every ``netlab vagrant`` command checks what it needs first: real processes, a PATH
with nothing on it, and the exact words a newcomer without the tools reads.

The goldens pin the wording of the one error each command prints: what is
missing, where it was looked for, and the apt-get line that installs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netlab.vagrant import doctor
from netlab.vagrant.topology import DEFAULT_BOX

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden")
SMOKE = "tests/vagrant/smoke.yaml"
EMPTY_PATH = "/nonexistent"  # nothing found on it, the same on every machine
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the goldens are root's view")


def _netlab(*args: str, path: str = EMPTY_PATH,
            prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "netlab.cli.main", "vagrant", *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
                          env={**os.environ, "PATH": path, "COLUMNS": "250"})


@root_only
@pytest.mark.parametrize(("args", "golden"), [
    ((["up", SMOKE]), "up-without-tools.txt"),
    ((["down", "--all"]), "down-without-tools.txt"),
])
def test_without_tools_one_error_names_them_and_the_fix(args: list[str], golden: str) -> None:
    result = _netlab(*args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (GOLDEN / golden).read_text()


@root_only
@pytest.mark.parametrize("args", [
    ["up", "-d", SMOKE], ["run", SMOKE], ["compare", SMOKE, "--repeat", "2"],
    ["down", SMOKE], ["status"], ["box"]])
def test_every_command_checks_before_it_starts(args: list[str]) -> None:
    result = _netlab(*args)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (f"error: netlab vagrant {args[0]} cannot start: 1 problem (see "
                        "'netlab vagrant doctor'); nothing was created")
    assert lines[1].startswith("  - tools: missing vagrant, ")
    assert lines[2] == f"    where: PATH={EMPTY_PATH}"
    assert lines[3].startswith("    fix: apt-get update && apt-get install -y "
                               "--no-install-recommends vagrant vagrant-libvirt ")
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


@root_only  # setpriv needs root to become another user
def test_without_root_the_error_says_so() -> None:
    result = _netlab("status", path=os.environ["PATH"],
                     prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
    assert result.returncode == 1
    assert ("  - root: running as uid 65534: VM labs need root (a network namespace for "
            "libvirtd, /dev/kvm's group, libvirt's system daemon)") in result.stderr
    assert "    fix: sudo netlab vagrant status ..." in result.stderr
    assert "Traceback" not in result.stderr


@root_only
def test_doctor_lists_each_missing_tool_with_its_package() -> None:
    result = _netlab("doctor", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ready"] is False
    assert report["packages"] == doctor.apt_packages()
    rows = {row["name"]: row for row in report["results"]}
    for tool in doctor.TOOLS:
        row = rows[f"tool {tool.command}"]
        assert row["ok"] is False and row["severity"] == "error"
        assert row["fix"] == ("apt-get update && apt-get install -y --no-install-recommends "
                              + " ".join(tool.packages))
    assert rows["root"]["ok"] is True
    assert "box" not in rows  # vagrant would have to say: its own row already fails
    table = _netlab("doctor")
    assert table.returncode == 1
    assert "every missing tool at once: apt-get update && apt-get install -y " \
           "--no-install-recommends " + " ".join(doctor.apt_packages()) in table.stdout
    assert "VM labs cannot run here yet: 15 thing(s) missing" in table.stdout


def test_the_installer_installs_what_the_doctor_checks() -> None:
    packages = doctor.apt_packages()
    assert {p for tool in doctor.TOOLS for p in tool.packages} == set(packages)
    assert {"vagrant-libvirt", "dnsmasq-base", "libvirt-daemon-system", "qemu-system-x86",
            "debootstrap", "extlinux", "syslinux-common"} <= set(packages)
    printed = subprocess.run([sys.executable, "-m", "netlab.vagrant.doctor", "--packages"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    assert printed.split() == packages
    assert "python -m netlab.vagrant.doctor --packages" in (REPO / "install.sh").read_text()


def test_vagrant_box_list_is_read_per_provider() -> None:
    listing = ("debian/bookworm64 (virtualbox, 12.20240905.1)\n"
               f"{DEFAULT_BOX}            (libvirt, 0)\n")
    assert doctor.box_listed(listing, DEFAULT_BOX)
    assert not doctor.box_listed(listing, "debian/bookworm64")  # not for libvirt
    assert not doctor.box_listed("There are no installed boxes! Use `vagrant box add`\n",
                                 DEFAULT_BOX)


@root_only
def test_a_daemon_elsewhere_is_named_by_its_namespace() -> None:
    """The namespace a running daemon is in, as the refusal names it; a process
    started in a namespace of this test's stands in for libvirtd."""
    name = "nltv-doc"
    subprocess.run(["ip", "netns", "add", name], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while doctor.daemon_namespace(sleeper.pid) != name and time.monotonic() < deadline:
            time.sleep(0.05)  # ip netns exec enters the namespace, then execs sleep
        assert doctor.daemon_namespace(sleeper.pid) == name
        assert doctor.daemon_namespace(os.getpid()) is None  # this machine's own
        row = doctor._elsewhere("libvirtd", sleeper.pid, Path("/run/libvirtd.pid"), "nl-vagrant")
        assert row.detail == (f"pid {sleeper.pid} runs in namespace {name}, not in nl-vagrant: "
                              "VMs it started would sit on that network, so netlab will not "
                              "use it")
        assert row.fix == (f"stop it (kill {sleeper.pid}, or 'systemctl stop libvirtd'); "
                           "netlab starts its own inside the namespace")
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["ip", "netns", "del", name], check=True)
