"""The lifecycle from the command line, as a user drives it: up -d, status,
exec, check, down; run with results; SIGTERM and SIGKILL of a foreground up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from netlab.cli.main import STACKS_SIGNAL
from netlab.lab import netns, state
from tests.lab.scenarios import unique_lab

NETLAB = [sys.executable, "-m", "netlab.cli.main"]


def _scenario_file(tmp_path: Path, name: str, duration: str = "2s") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nduration: {duration}\nhosts: [alice, router, bob]\n"
        "links:\n"
        "  - endpoints: [alice, router]\n    rate: 50Mbit\n"
        "  - endpoints: [router, bob]\n    up: {rate: 10Mbit}\n    down: {rate: 5Mbit}\n"
    )
    return path


def netlab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETLAB, *args], capture_output=True, text=True, check=check,
                          timeout=120)


def _wait_up(name: str, proc: subprocess.Popen[bytes], log: Path,
             timeout_s: float = 30.0) -> state.LabState:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = state.load(name)
        if current is not None and current.status == "up":
            return current
        if proc.poll() is not None:
            raise AssertionError(f"netlab up of {name} exited {proc.returncode} before the "
                                 f"lab was up:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise AssertionError(f"lab {name} did not come up in {timeout_s} s:\n"
                         f"{log.read_text(errors='replace')}")


def _wait_or_dump(proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> int:
    """The exit code; a process still running after ``timeout_s`` fails the test
    with every thread's stack (netlab prints them on STACKS_SIGNAL)."""
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(STACKS_SIGNAL)
        time.sleep(1.0)
        raise AssertionError(f"still running {timeout_s:.0f} s after the signal; its "
                             f"output and stacks:\n{log.read_text(errors='replace')}") from None


def test_up_detached_then_status_exec_check_down(tmp_path: Path) -> None:
    name = unique_lab("cud")
    path = _scenario_file(tmp_path, name)
    try:
        netlab("up", "-d", "-q", str(path))
        listed = json.loads(netlab("status", "--json").stdout)
        mine = next(lab for lab in listed if lab["lab"] == name)
        assert mine["health"] == "up" and mine["backend"] == "kernel"
        assert sorted(mine["hosts"]) == ["alice", "bob", "router"]
        addr = netlab("exec", name, "bob", "--", "ip", "-o", "-4", "addr", "show").stdout
        assert mine["hosts"]["bob"]["interfaces"][0]["address"] in addr
        checked = netlab("check", name, "--json")
        pairs = json.loads(checked.stdout)
        assert len(pairs) == 6 and all(p["ok"] for p in pairs), pairs
    finally:
        netlab("down", name, check=False)
    assert state.load(name) is None
    assert not any(netns.exists(f"nl-{name}.{h}") for h in ("alice", "router", "bob"))


def test_run_writes_results_with_the_contract_keys(tmp_path: Path) -> None:
    name = unique_lab("crn")
    out = tmp_path / "runs"
    netlab("run", "-q", "--out", str(out), str(_scenario_file(tmp_path, name, "4s")))
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("netlab_version", "kernel", "backend", "scenario", "flows", "agents", "fidelity"):
        assert key in results
    assert results["backend"] == "kernel"
    assert results["flows"] == []  # no flows asked, none sent (the probe is 'check --rate')
    assert {"faithful", "links"} <= results["fidelity"].keys()
    assert state.load(name) is None


def test_sigterm_to_a_foreground_up_cleans_up(tmp_path: Path) -> None:
    name = unique_lab("cst")
    log = tmp_path / "up.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*NETLAB, "up", "-q", str(_scenario_file(tmp_path, name, "60s"))],
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_up(name, proc, log)
        proc.send_signal(STACKS_SIGNAL)  # a look at where it is does not end it
        deadline = time.monotonic() + 10
        while "most recent call first" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert _wait_or_dump(proc, log, 30) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = [h for h in ("alice", "router", "bob") if netns.exists(f"nl-{name}.{h}")]
    assert state.load(name) is None and not left, (
        f"journal {state.load(name)}, namespaces left {left}; netlab up said:\n"
        f"{log.read_text(errors='replace')}")


@pytest.mark.parametrize("backend", ["kernel", "user"])
def test_down_after_sigkill_removes_everything(tmp_path: Path, backend: str) -> None:
    """After a SIGKILL nothing cleaned up: `down` must find every namespace and,
    with the user-space backend, the orphaned link processes too."""
    name = unique_lab("ckl")
    log = tmp_path / "up.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*NETLAB, "up", "-q", "--backend", backend,
                                 str(_scenario_file(tmp_path, name, "60s"))],
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        recorded = _wait_up(name, proc, log)
        link_pids = [int(o.name) for o in recorded.objects if o.kind == "process"]
        assert len(link_pids) == (2 if backend == "user" else 0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert all(netns.exists(ns) for ns in recorded.namespaces)  # orphaned, as after a crash
        status = json.loads(netlab("status", "--json").stdout)
        assert any(lab["lab"] == name and not lab["owner_alive"] for lab in status)
        with pytest.raises(subprocess.CalledProcessError):
            netlab("up", "-d", "-q", str(_scenario_file(tmp_path, name)))  # still there: refused
        assert all(psutil.pid_exists(pid) for pid in link_pids)  # orphaned link processes
        netlab("down", name)
        assert not any(psutil.pid_exists(pid) for pid in link_pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        netlab("down", name, check=False)
    assert not any(netns.exists(ns) for ns in recorded.namespaces)
    assert state.load(name) is None


def test_down_refuses_a_name_that_is_not_a_lab_name() -> None:
    """A name becomes a path under the run root: '../x' must never reach outside it."""
    done = netlab("down", "../etc", check=False)
    assert done.returncode == 1
    assert done.stderr == ("error: '../etc' is not a lab name\n  where: netlab down NAME\n"
                           "  fix: give a name as 'netlab status' lists it\n")


def _start_up(tmp_path: Path, name: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"up-{len(list(tmp_path.glob('up-*.log')))}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*NETLAB, "up", "-q", "--out", str(tmp_path / "runs"), *extra,
                                 str(_scenario_file(tmp_path, name, "60s"))],
                                stdout=sink, stderr=subprocess.STDOUT)
    return proc, log


def test_down_from_another_process_ends_a_foreground_up_cleanly(tmp_path: Path) -> None:
    """The foreground up writes what it has, says why it ended and exits 0."""
    name = unique_lab("cdf")
    proc, log = _start_up(tmp_path, name)
    try:
        recorded = _wait_up(name, proc, log)
        time.sleep(1.0)
        done = netlab("down", name)
        assert "asking it to write its results" in done.stderr
        assert proc.wait(timeout=60) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        netlab("down", name, check=False)
    said = log.read_text(errors="replace")
    assert "Traceback" not in said and "taken down by 'netlab down'" in said, said
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "results.json").read_text())["scenario"]
    assert state.load(name) is None
    assert not any(netns.exists(ns) for ns in recorded.namespaces)


def test_an_old_up_leaves_a_new_lab_of_the_same_name_untouched(tmp_path: Path) -> None:
    """Old up stopped, its lab taken down and a new one brought up under the
    same name: when the old up runs again it must not touch the new lab."""
    name = unique_lab("cdn")
    old, log = _start_up(tmp_path, name, "--backend", "user")
    try:
        first = _wait_up(name, old, log)
        old.send_signal(signal.SIGSTOP)
        netlab("down", "--wait", "1", name)  # the old up can not answer: down removes it
        netlab("up", "-d", "-q", "--backend", "user", str(_scenario_file(tmp_path, name)))
        second = state.load(name)
        assert second is not None and second.instance != first.instance
        old.send_signal(signal.SIGCONT)
        assert old.wait(timeout=60) == 0, log.read_text(errors="replace")
        said = log.read_text(errors="replace")
        assert "Traceback" not in said and "left untouched" in said, said
        now = state.load(name)
        assert now is not None and now.instance == second.instance and now.status == "up"
        assert all(netns.inode_of(o.name) == o.ident for o in now.objects if o.kind == "netns")
        assert all(psutil.pid_exists(int(o.name)) for o in now.objects if o.kind == "process")
    finally:
        if old.poll() is None:
            old.send_signal(signal.SIGCONT)
            old.kill()
            old.wait()
        netlab("down", name, check=False)
    assert state.load(name) is None


def test_down_all_reports_a_garbled_state_and_removes_the_rest(
        tmp_path: Path, run_root: Path) -> None:
    name = unique_lab("cga")
    garbled = run_root / f"{name[:9]}bad"
    netlab("up", "-d", "-q", str(_scenario_file(tmp_path, name)))
    garbled.mkdir()
    (garbled / "state.json").write_text("{torn")
    try:
        done = netlab("down", "--all", check=False)
        assert done.returncode == 1
        assert (f"error: the state file of lab '{garbled.name}' is unreadable (Expecting property "
                "name enclosed in double quotes: line 1 column 2 (char 1)); netlab does not know "
                "what the lab made, so it removes nothing of it\n"
                f"  where: {garbled / 'state.json'}\n") in done.stderr
        assert f"down {name}: removed" in done.stderr
        assert state.load(name) is None
    finally:
        netlab("down", name, check=False)
        import shutil

        shutil.rmtree(garbled, ignore_errors=True)


def test_concurrent_ups_of_one_name_build_one_lab(tmp_path: Path) -> None:
    """Preflight runs under the lab's lock: the second up sees the first's lab."""
    name = unique_lab("ccu")
    path = _scenario_file(tmp_path, name)
    procs = [subprocess.Popen([*NETLAB, "up", "-d", "-q", str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outcomes = [(proc.wait(timeout=120), proc.communicate()[1]) for proc in procs]
        codes = sorted(code for code, _ in outcomes)
        assert codes == [0, 1], outcomes
        refused = next(err for code, err in outcomes if code == 1)
        assert f"a lab named '{name}' is already up" in refused, refused
        assert f"fix: `netlab down {name}`" in refused, refused
    finally:
        netlab("down", name, check=False)
    assert state.load(name) is None


@pytest.mark.parametrize(("given", "why"), [
    ("8.8.8.0/24", "labs use private (RFC 1918) addresses only"),
    ("10.1.2.0/31", "a /31 is too small; use a /24 or a shorter prefix"),
    ("10.1.2.3/16", "host bits are set; write 10.1.0.0/16"),
])
def test_subnet_option_is_refused_like_the_scenarios_subnet(
        tmp_path: Path, given: str, why: str) -> None:
    done = netlab("up", "--dry-run", "--subnet", given,
                  str(_scenario_file(tmp_path, unique_lab("csn"))), check=False)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: --subnet '{given}' is not a private IPv4 network of /24 or larger inside "
        f"10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, such as 10.77.0.0/16: {why}\n"
        "  where: --subnet\n"
        "  fix: give a free private range such as 10.77.0.0/16, or leave --subnet out to let "
        "netlab choose one\n")


_INJECT = (
    "import sys, netlab.run.start as s\n"
    "def boom(*a, **k):\n"
    "    raise RuntimeError('injected fault while writing results')\n"
    "s.build_results = boom\n"
    "from netlab.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_an_unexpected_error_is_one_line_with_a_log_and_the_lab_goes(tmp_path: Path) -> None:
    """A bug (here a fault injected into results writing) prints one line, keeps the
    traceback in the run directory, exits non-zero and still removes the lab."""
    name = unique_lab("cie")
    out = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-c", _INJECT, "run", "-q", "--out", str(out),
         str(_scenario_file(tmp_path, name, "2s"))],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "NETLAB_LOG_DIR": str(tmp_path / "logs")})
    assert done.returncode == 70
    (run_dir,) = out.iterdir()
    (log,) = run_dir.glob("netlab-internal-error-*.log")
    assert done.stderr.splitlines()[-1] == (
        "internal error: RuntimeError: injected fault while writing results — please report "
        f"it with {log}")
    assert "Traceback" not in done.stderr
    assert "Traceback (most recent call last)" in log.read_text()
    assert state.load(name) is None
    assert not any(netns.exists(f"nl-{name}.{h}") for h in ("alice", "router", "bob"))


def test_an_unexpected_error_without_a_run_goes_to_the_log_dir(tmp_path: Path) -> None:
    inject = _INJECT.replace("netlab.run.start as s", "netlab.lab.state as s").replace(
        "s.build_results", "s.all_labs")
    done = subprocess.run([sys.executable, "-c", inject, "status"], capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "NETLAB_LOG_DIR": str(tmp_path / "logs")})
    assert done.returncode == 70
    (log,) = (tmp_path / "logs").glob("netlab-internal-error-*.log")
    assert done.stderr == (f"internal error: RuntimeError: injected fault while writing results"
                           f" — please report it with {log}\n")


@pytest.mark.parametrize("backend", ["kernel", "user"])
def test_signals_during_teardown_wait_until_it_is_done(tmp_path: Path, backend: str) -> None:
    """SIGTERM (which takes a foreground up's lab down), then a storm of Ctrl-C,
    SIGTERM and SIGHUP while the lab is removed: teardown finishes, nothing is
    left, no traceback."""
    name = unique_lab("cts")
    proc, log = _start_up(tmp_path, name, "--backend", backend)
    storm = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    sent = 0
    try:
        recorded = _wait_up(name, proc, log)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            proc.send_signal(storm[sent % 3])
            sent += 1
            time.sleep(0.001)
        assert proc.poll() is not None and proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = f"exit {proc.returncode}, {sent} signals; netlab up said:\n" + log.read_text(
        errors="replace")
    assert sent >= 1, said
    assert "Traceback" not in said and "Exception ignored" not in said, said
    left = [ns for ns in recorded.namespaces if netns.exists(ns)]
    assert state.load(name) is None and not left, (left, said)
    procs = [int(o.name) for o in recorded.objects if o.kind == "process"]
    assert not any(psutil.pid_exists(pid) for pid in procs)
