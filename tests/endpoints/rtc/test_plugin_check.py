"""``netlab plugin check``: the bundled test plugins and OpenNetLab's own example
estimator replayed through the bundled recorded call, and what it flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.endpoints.rtc.test_apps_loopback import REPO

PLUGINS = REPO / "tests" / "data" / "plugins"
HRCC_LIKE = PLUGINS / "hrcc_like"
#: OpenNetLab/AlphaRTC's example (examples/peerconnection/serverless/corpus/
#: BandwidthEstimator.py, BSD-3-Clause): a fixed 1 Mbit/s; see tests/data/plugins/README.md.
ONL_EXAMPLE = PLUGINS / "alphartc_example" / "BandwidthEstimator.py"
#: Shaped like OpenNetLab/Challenge-Example, with OpenNetLab's pretrained checkpoint.
ONL_PPO = PLUGINS / "onl_ppo" / "BandwidthEstimator.py"


def check(plugin: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netlab.cli.main", "plugin", "check",
                           str(plugin), *extra], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def estimates(stdout: str) -> list[float]:
    return [float(line.split()[1]) for line in stdout.splitlines()
            if line.strip() and line.split()[-2:-1] != [] and "Mbit/s" in line
            and line.strip()[0].isdigit()]


@pytest.mark.parametrize("plugin", [HRCC_LIKE / "BandwidthEstimator_gcc.py",
                                    HRCC_LIKE / "BandwidthEstimator.py", ONL_EXAMPLE])
def test_check_runs_public_style_plugins(plugin: Path) -> None:
    done = check(plugin)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"loaded {plugin}" in out
    assert "3388 packets over 15.0 s, 73 estimates" in out
    values = estimates(out)
    assert len(values) == 15  # one line per second of the 15-s call
    assert all(0.05 <= v <= 20 for v in values), values
    assert "report_states: p50" in out and "get_estimated_bandwidth: p50" in out
    assert "ok: every answer an int in bps" in out
    assert "payload type 96" in out  # the known differences are spelled out


def test_check_runs_opennetlab_ppo_and_flags_its_numpy_answers() -> None:
    done = check(ONL_PPO)
    assert done.returncode == 0, done.stderr
    assert "flag: returns float64, not int: AlphaRTC's cmdinfer int()s it" in done.stdout
    values = estimates(done.stdout)
    assert len(values) == 15
    # OpenNetLab's published checkpoint, fed AlphaRTC's stats of a call that ran at
    # about 2 Mbit/s, answers about 0.22 Mbit/s throughout (open loop).
    assert all(0.1 < v < 0.5 for v in values), values


def test_check_on_the_gcc_heuristic_follows_the_call() -> None:
    values = estimates(check(HRCC_LIKE / "BandwidthEstimator_gcc.py").stdout)
    assert values[0] == pytest.approx(0.3, abs=0.02)  # its 300 kbit/s start
    assert values[-1] > values[0]  # no overuse on a call that never exceeded the link


@pytest.mark.parametrize(("body", "flag"), [
    ("return 1e6", "returns float, not int"),
    ("return 2.5", "answers below 10000 (e.g. 2.5): kbit/s or Mbit/s instead of bps?"),
    ("return 0", "answers of 0 bps"),
])
def test_check_flags_answers_that_are_not_ints_in_bps(tmp_path: Path, body: str,
                                                      flag: str) -> None:
    plugin = tmp_path / "BandwidthEstimator.py"
    plugin.write_text("class Estimator:\n    def report_states(self, stats): pass\n"
                      f"    def get_estimated_bandwidth(self):\n        {body}\n")
    done = check(plugin, "--packets", str(REPO / "endpoints" / "rtc" / "data" /
                                          "call-2mbit-20ms.jsonl.gz"))
    assert done.returncode == 0, done.stderr
    assert f"flag: 73 {flag}" in done.stdout or f"flag: {flag}" in done.stdout


@pytest.mark.parametrize(("body", "message"), [
    ("return None", "error: Estimator.get_estimated_bandwidth returned None, not a number"),
    ("return float('nan')", "error: Estimator.get_estimated_bandwidth returned nan"),
    ("return helper()", "error: Estimator.get_estimated_bandwidth raised NameError"),
])
def test_check_fails_on_answers_that_are_no_bitrate(tmp_path: Path, body: str,
                                                    message: str) -> None:
    plugin = tmp_path / "BandwidthEstimator.py"
    plugin.write_text("class Estimator:\n    def report_states(self, stats): pass\n"
                      f"    def get_estimated_bandwidth(self):\n        {body}\n")
    done = check(plugin)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr or f'File "{plugin}", line 4' in done.stderr
    assert "netlab/" not in done.stderr.replace(str(REPO), "")


def test_check_names_a_missing_file(tmp_path: Path) -> None:
    done = check(tmp_path / "nope.py")
    assert done.returncode == 1
    assert "error: estimator plugin file does not exist" in done.stderr
    assert "fix:" in done.stderr
