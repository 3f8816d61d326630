"""A plugin in the receiver process, over loopback, as AlphaRTC users expect it:
its folder is the working directory and first on sys.path, it is polled
after packets as AlphaRTC polls it, its answers reach the sender in REMB, its
exceptions leave its own traceback, its load and call times are reported, and
the receiver says what it is doing until it is ready."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from endpoints.rtc.rtcp import Remb
from tests.endpoints.rtc.test_apps_loopback import REPO, Processes, processes  # noqa: F401

PLUGIN = '''
import os, sys, time
import helper  # a sibling module, found through sys.path[0]

class Estimator(object):
    def __init__(self):
        time.sleep(float(open("./conf/load_s.txt").read()))  # a slow load, a relative path
        with open("where.json", "w") as f:
            helper.dump({"cwd": os.getcwd(), "path0": sys.path[0]}, f)
        self.reports = 0
        self.last = None

    def report_states(self, stats):
        helper.check(stats)
        self.reports += 1
        self.last = stats["arrival_time_ms"]

    def get_estimated_bandwidth(self):
        with open("polls.txt", "a") as f:  # relative: lands in the plugin's folder
            f.write(f"{self.last} {self.reports}\\n")
        self.reports = 0
        time.sleep(float(open("./conf/poll_s.txt").read()))
        return 700_000
'''

HELPER = '''
import json

def dump(value, f):
    json.dump(value, f)

def check(stats):
    if stats["sequence_number"] < 0:
        raise ValueError("negative sequence number")
    if FAIL_AFTER and stats.get("payload_type") == 96:
        global seen
        seen += 1
        if seen > FAIL_AFTER:
            return 1 / 0

FAIL_AFTER = {fail_after}
seen = 0
'''


def make_plugin(folder: Path, *, load_s: float = 0.0, poll_s: float = 0.0,
                fail_after: int = 0) -> Path:
    (folder / "conf").mkdir(parents=True)
    (folder / "conf" / "load_s.txt").write_text(str(load_s))
    (folder / "conf" / "poll_s.txt").write_text(str(poll_s))
    (folder / "helper.py").write_text(HELPER.format(fail_after=fail_after))
    plugin = folder / "BandwidthEstimator.py"
    plugin.write_text(PLUGIN)
    return plugin


def start(procs: Processes, log_dir: Path, plugin: Path, *extra: str) -> subprocess.Popen[str]:
    log_dir.mkdir(parents=True, exist_ok=True)
    return procs.start("endpoints.rtc.receiver_app", "--bind", "127.0.0.1:0", "--log-dir",
                       str(log_dir), "--estimator", f"plugin:{plugin}", "--duration", "20",
                       *extra)


def ready_states(log_dir: Path, receiver: subprocess.Popen[str],
                 timeout: float = 30) -> list[dict[str, Any]]:
    """Every distinct ready.json seen until ``ready``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = json.loads((log_dir / "ready.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = None
        if state is not None and (not seen or state != seen[-1]):
            seen.append(state)
            if state["state"] == "ready":
                return seen
        if receiver.poll() is not None:
            raise AssertionError(f"receiver exited: {receiver.communicate()[1]}")
        time.sleep(0.01)
    raise AssertionError(f"not ready: {seen}")


def bound_port(log_dir: Path) -> int:
    return int(json.loads((log_dir / "receiver_meta.json").read_text())["bound_address"][1])


def send(procs: Processes, port: int, log_dir: Path, seconds: float) -> None:
    sender = procs.start("endpoints.rtc.sender_app", "--dest", f"127.0.0.1:{port}",
                         "--duration", str(seconds), "--estimator", "remb",
                         "--log-dir", str(log_dir))
    _out, err = sender.communicate(timeout=seconds + 20)
    assert sender.returncode == 0, err


def stop(receiver: subprocess.Popen[str]) -> str:
    receiver.terminate()
    _out, err = receiver.communicate(timeout=20)
    return err


def test_plugin_lives_in_its_folder_and_is_polled_as_alphartc(
        processes: Processes, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "my estimator"
    plugin = make_plugin(folder, load_s=1.0)
    rx, tx = tmp_path / "rx", tmp_path / "tx"
    receiver = start(processes, rx, plugin)
    states = ready_states(rx, receiver)
    # It said what it was doing while the plugin loaded, then ready.
    assert [s["state"] for s in states][-1] == "ready"
    assert any(s["doing"] == f"loading plugin {plugin}" for s in states), states
    assert "receiving on 127.0.0.1:" in states[-1]["doing"]
    send(processes, bound_port(rx), tx, 3.0)
    stop(receiver)
    where = json.loads((folder / "where.json").read_text())
    assert where == {"cwd": str(folder), "path0": str(folder)}
    polls = [tuple(map(int, line.split())) for line in
             (folder / "polls.txt").read_text().splitlines()]
    assert 10 <= len(polls) <= 16  # ~3 s / 200 ms
    # Each poll follows a report (AlphaRTC polls inside IncomingPacket), more than
    # 200 ms after the previous one's packet.
    assert all(reports >= 1 for _, reports in polls)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(polls)]
    assert min(gaps) >= 200 and max(gaps) < 300, gaps  # ms, rounded
    meta = json.loads((rx / "receiver_meta.json").read_text())
    plugin_meta = meta["counters"]["plugin"]
    assert plugin_meta["load_s"] >= 1.0
    assert plugin_meta["get_estimated_bandwidth"]["calls"] == len(polls)
    assert plugin_meta["report_states"]["calls"] == meta["counters"]["packets_received"]
    sender_meta = json.loads((tx / "sender_meta.json").read_text())
    # Every answer went to the sender in REMB and became its target (remb mode).
    assert sender_meta["counters"]["remb_received"] == len(polls)
    assert sender_meta["final_target_bps"] == Remb.representable(700_000)


def test_plugin_exception_shows_its_own_traceback(processes: Processes,  # noqa: F811
                                                  tmp_path: Path) -> None:
    plugin = make_plugin(tmp_path / "plug", fail_after=50)
    rx = tmp_path / "rx"
    receiver = start(processes, rx, plugin)
    ready_states(rx, receiver)
    send(processes, bound_port(rx), tmp_path / "tx", 1.5)
    _out, err = receiver.communicate(timeout=20)
    assert receiver.returncode == 1
    lines = err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert f'File "{tmp_path / "plug" / "BandwidthEstimator.py"}"' in err
    assert f'File "{tmp_path / "plug" / "helper.py"}"' in err
    assert "return 1 / 0" in err and "ZeroDivisionError: division by zero" in err
    assert "estimators.py" not in err and "receiver_app.py" not in err
    assert lines[-1].startswith("receiver_app: error: Estimator.report_states raised "
                                "ZeroDivisionError: division by zero; where: ")
    meta = json.loads((rx / "receiver_meta.json").read_text())
    assert meta["state"] == "error"
    assert meta["counters"]["error"].startswith("Estimator.report_states raised")


def test_slow_calls_are_counted_against_the_budget(processes: Processes,  # noqa: F811
                                                   tmp_path: Path) -> None:
    plugin = make_plugin(tmp_path / "plug", poll_s=0.012)
    rx = tmp_path / "rx"
    receiver = start(processes, rx, plugin, "--plugin-budget", "0.005")
    ready_states(rx, receiver)
    send(processes, bound_port(rx), tmp_path / "tx", 1.5)
    stop(receiver)
    calls = json.loads((rx / "receiver_meta.json").read_text())["counters"]["plugin"]
    polls = calls["get_estimated_bandwidth"]
    assert polls["calls"] >= 5 and polls["over_budget"] == polls["calls"]
    assert polls["p50_us"] >= 12_000 and polls["budget_ms"] == 5
    assert calls["report_states"]["over_budget"] <= 2  # quick, bar a scheduling hiccup


def test_a_plugin_that_fails_to_load_says_so_while_loading(tmp_path: Path) -> None:
    folder = tmp_path / "plug"
    folder.mkdir()
    (folder / "BandwidthEstimator.py").write_text(
        "import missing_module_for_netlab_test\nclass Estimator: pass\n")
    done = subprocess.run([sys.executable, "-m", "endpoints.rtc.receiver_app", "--bind",
                           "127.0.0.1:0", "--log-dir", str(tmp_path / "rx"), "--estimator",
                           f"plugin:{folder / 'BandwidthEstimator.py'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'missing_module_for_netlab_test'" in done.stderr
    assert f'File "{folder / "BandwidthEstimator.py"}", line 1, in <module>' in done.stderr
    state = json.loads((tmp_path / "rx" / "ready.json").read_text())
    assert state["state"] == "starting"
    assert state["doing"] == f"loading plugin {folder / 'BandwidthEstimator.py'}"
