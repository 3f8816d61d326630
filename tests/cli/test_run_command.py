"""``kind: command`` flows in real labs: iperf3 and small shell programs,
unmodified, with their placeholders, environment, output, exits and stops."""

from __future__ import annotations

import csv
import importlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from netlab.lab import state
from tests.cli.runs import REPO, netlab_run
from tests.lab.scenarios import unique_lab

NETLAB = [sys.executable, "-m", "netlab.cli.main"]
LINK = "hosts: [alice, bob]\nlinks:\n  - endpoints: [alice, bob]\n    rate: 5Mbit\n"


@pytest.fixture
def home() -> Iterator[Path]:
    """A folder the host's unprivileged user can enter (pytest's own is root's, 0700):
    command flows run there, as that user."""
    path = Path(tempfile.mkdtemp(prefix="netlab-cmd-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _scenario(tmp_path: Path, name: str, duration: str, flows: str, link: str = LINK) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nduration: {duration}\n{link}flows:\n{flows}")
    return path


def _flows(results: dict[str, object]) -> dict[str, dict[str, object]]:
    flows = results["flows"]
    assert isinstance(flows, list)
    return {f["id"]: f for f in flows}


def test_iperf3_server_and_client_as_command_flows(tmp_path: Path, home: Path) -> None:
    name = unique_lab("cip")
    path = _scenario(home, name, "8s", """\
  - {kind: command, id: srv, host: bob, run: "iperf3 -s -1 -p 5201 -J", ready: 5201}
  - {kind: command, id: cli, host: alice, start: 1s, stop: 7s,
     run: "iperf3 -c {bob} -p 5201 -u -b 2M -t 4 -l 1200"}
""", link=LINK + "    capture: true\n")
    run_dir, results = netlab_run(path, tmp_path / "runs", plots=True)
    flows = _flows(results)
    srv, cli = flows["srv"], flows["cli"]
    assert srv["kind"] == "command" and srv["host"] == "bob" and "from" not in srv
    assert srv["exit_code"] == 0 and cli["exit_code"] == 0, (srv, cli)
    assert isinstance(cli["argv"], list)
    ipaddress.IPv4Address(cli["argv"][2])  # {bob} became bob's address
    started, ended = cli["started_s"], cli["ended_s"]
    assert isinstance(started, float) and isinstance(ended, float)
    assert 0.9 < started < 1.6 and 3.9 < ended - started < 6.0, cli  # -t 4, then it exits
    # The server started before the run's clock and said ready (listening) before it.
    ready, srv_started = srv["ready_s"], srv["started_s"]
    assert isinstance(ready, float) and isinstance(srv_started, float), srv
    assert srv_started <= ready <= 0.0 and "ready_s" not in cli, srv
    report = json.loads((run_dir / "flows" / "srv" / "stdout").read_text())
    received = report["end"]["sum_received"]
    assert 1.8e6 < received["bits_per_second"] < 2.1e6, received  # 2 Mbit/s under 5 Mbit/s
    assert (run_dir / "flows" / "cli" / "stderr").exists()
    # The lab's own figures from the capture agree with iperf3's report ...
    udp = next(row for row in results["traffic"] if row["proto"] == "udp"
               and row["direction"] == "up" and row["dport"] == 5201)
    assert udp["recv_rate_bps"] == pytest.approx(received["bits_per_second"], rel=0.02), udp
    assert cli["metrics"]["recv_rate_bps"] == pytest.approx(received["bits_per_second"],
                                                            rel=0.02), cli["metrics"]
    # ... and the command flow has a time series and a plot like netlab's own flows,
    with (run_dir / "timeseries" / "cli.csv").open() as handle:
        rates = [float(r["recv_rate_bps"]) for r in csv.DictReader(handle)]
    busy = [rate for rate in rates if rate > 0]
    assert len(busy) >= 35 and 1.5e6 < sorted(busy)[len(busy) // 2] < 2.5e6, rates  # 4 s at 2M
    assert (run_dir / "plots" / "cli.png").stat().st_size > 5000
    # and a report shows where it ran and its traffic, 5-tuple by 5-tuple.
    report = subprocess.run([*NETLAB, "report", str(run_dir)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert report.returncode == 0, report.stderr
    assert "in alice" in report.stdout and "captured traffic" in report.stdout
    assert f"{udp['src']}:{udp['sport']} → {udp['dst']}:5201" in report.stdout, report.stdout


def test_environment_placeholders_cwd_and_privileges(tmp_path: Path, home: Path) -> None:
    name = unique_lab("cen")
    script = home / "who.sh"
    script.write_text('#!/bin/sh\necho "$NETLAB_LAB $NETLAB_HOST $NETLAB_RUN_DIR $GREETING '
                      '$(id -u) $(pwd) $1"\n')
    script.chmod(0o755)
    path = _scenario(home, name, "2s", """\
  - {kind: command, id: caller, host: alice, run: ["./who.sh", "{bob}"],
     env: {GREETING: "hi {run_dir}"}}
  - {kind: command, id: root, host: bob, user: root, run: "./who.sh {{literal}}"}
""")
    env = dict(os.environ, SUDO_UID="65534", SUDO_GID="65534")
    done = subprocess.run([*NETLAB, "run", "-q", "--out", str(tmp_path / "runs"), str(path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    caller = (run_dir / "flows" / "caller" / "stdout").read_text().split()
    lab, host, run_dir_seen, greeting, greeting_dir, uid, cwd, bob = caller
    assert (lab, host, run_dir_seen) == (name, "alice", str(run_dir))
    assert (greeting, greeting_dir) == ("hi", str(run_dir))
    assert uid == "65534" and cwd == str(home)  # the sudo caller, the scenario's folder
    assert bob.count(".") == 3
    root = (run_dir / "flows" / "root" / "stdout").read_text().split()
    assert root[1] == "bob" and root[-3] == "0" and root[-1] == "{literal}"


def test_a_failing_command_is_recorded_and_the_run_goes_on(tmp_path: Path, home: Path) -> None:
    path = _scenario(home, unique_lab("cfx"), "3s", """\
  - {kind: command, id: fails, host: alice, run: "sh -c 'echo oops >&2; exit 3'"}
  - {kind: command, id: works, host: bob, start: 1s, run: "sh -c 'echo fine'"}
""")
    done = subprocess.run([*NETLAB, "run", "--out", str(tmp_path / "runs"), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    flows = _flows(json.loads((run_dir / "results.json").read_text()))
    assert flows["fails"]["exit_code"] == 3 and flows["works"]["exit_code"] == 0
    assert (run_dir / "flows" / "fails" / "stderr").read_text() == "oops\n"
    assert "flow fails" in done.stdout and "exited with 3" in done.stdout, done.stdout


def test_stop_sends_sigterm_then_sigkill_without_holding_up_the_run(tmp_path: Path,
                                                                     home: Path) -> None:
    path = _scenario(home, unique_lab("cst"), "4s", """\
  - {kind: command, id: polite, host: alice, stop: 1s, run: "sleep 30"}
  - {kind: command, id: stubborn, host: bob, stop: 1s, grace: 1.5s,
     run: ["sh", "-c", "trap '' TERM; sleep 30"]}
  - {kind: command, id: later, host: alice, start: 1.5s, stop: 2s, run: "sleep 30"}
""")
    _, results = netlab_run(path, tmp_path / "runs")
    flows = _flows(results)
    polite, stubborn, later = flows["polite"], flows["stubborn"], flows["later"]
    assert polite["exit_code"] == -15, polite
    assert stubborn["exit_code"] == -9, stubborn
    assert isinstance(polite["ended_s"], float) and polite["ended_s"] < 2.5
    assert isinstance(stubborn["ended_s"], float) and 2.4 < stubborn["ended_s"] < 3.5
    # Started on time while the stubborn one was still in its grace period.
    assert later["started_s"] == pytest.approx(1.5, abs=0.2) and later["exit_code"] == -15, later


def test_a_command_that_cannot_start_is_refused_before_the_lab_is_built(
        tmp_path: Path) -> None:
    name = unique_lab("cno")
    path = _scenario(tmp_path, name, "2s", """\
  - {kind: command, id: ghost, host: alice, run: "./not-here --flag"}
""")
    done = subprocess.run([*NETLAB, "run", "--out", str(tmp_path / "runs"), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{path}:8: flows[0].run: expected a program that can start" in done.stderr
    assert "not-here', which does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert state.load(name) is None and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["byo-iperf3"])
def test_the_bundled_byo_scenario_validates(name: str) -> None:
    done = subprocess.run([*NETLAB, "validate", str(REPO / "scenarios" / f"{name}.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_aiortc_call_runs_as_two_command_flows(tmp_path: Path) -> None:
    """The WebRTC example, unmodified, on its 600 kbit/s link (a shorter call)."""
    pytest.importorskip("aiortc")  # an optional extra, not a netlab dependency
    home = Path(tempfile.mkdtemp(prefix="netlab-aiortc-"))
    home.chmod(0o755)
    try:
        example = REPO / "examples" / "aiortc-call"
        shutil.copy(example / "call.py", home / "call.py")
        text = (example / "call.yaml").read_text().replace("python3", sys.executable)
        text = text.replace("name: aiortc-call", f"name: {unique_lab('cwr')}")
        text = text.replace("duration: 30s", "duration: 16s")
        text = text.replace("--duration 25", "--duration 12")
        try:
            importlib.import_module("netlab.capture")
        except ImportError:
            text = text.replace("    capture: true\n", "")
        (home / "call.yaml").write_text(text)
        _, results = netlab_run(home / "call.yaml", tmp_path / "runs", timeout=180)
        flows = _flows(results)
        assert flows["caller"]["exit_code"] == 0 and flows["callee"]["exit_code"] == 0, flows
        lines = [json.loads(line) for line in
                 Path(str(flows["callee"]["stdout"])).read_text().splitlines()]
        seconds = [line for line in lines if "t_s" in line]
        assert len(seconds) >= 8 and all(line["frames"] > 0 for line in seconds[2:]), lines
        if "traffic" in results:
            metrics = flows["caller"]["metrics"]
            assert isinstance(metrics, dict)
            assert 100e3 < metrics["recv_rate_bps"] < 600e3, metrics
            assert 20.0 <= metrics["delay_p50_ms"] < 400.0, metrics
    finally:
        shutil.rmtree(home)
