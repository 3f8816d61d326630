"""``netlab finetune``: a tiny real run, its checkpoint metadata, and resume after SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from netlab.agent.checkpoints import load_policy
from netlab.errors import NetlabError
from netlab.learning.finetune import lab_prefix, load_config

REPO = Path(__file__).resolve().parents[3]

CONFIG = """
name: ftt
seed: 4
start: {start}
out: {out}
rounds: 2
episodes: 1
parallel: 1
deadline: 20ms
train:
  count: 2
  seed: 4
  duration_s: 4
  space: {{max_bw_mbps: [1.5, 3], bw_ratio: [1, 2], change_interval_s: [1, 2],
          delay_ms: [10, 20], queue_pkt: [30, 60], loss_pct: 0}}
ppo: {{epochs: 2, minibatch_size: 16}}
"""


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "ft.yaml"
    path.write_text(CONFIG.format(start=REPO / "models" / "opennetlab-pretrained.pth",
                                  out=tmp_path / "out"))
    return path


def _netlab(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "netlab.cli.main", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)


def _wait_round(state: Path, round_: int, proc: subprocess.Popen[bytes], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if state.is_file() and json.loads(state.read_text())["round"] >= round_:
            return
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"finetune exited {proc.returncode}: {out[-2000:]}")
        time.sleep(0.2)
    pytest.fail(f"round {round_} not reached in {limit_s} s")


def _labs_gone(prefix: str, limit_s: float = 40) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        netns = Path("/run/netns")
        if not any(p.name.startswith(f"nl-{prefix}") for p in netns.iterdir()):
            return
        time.sleep(0.2)
    pytest.fail("the killed run's labs were not torn down")


def test_killed_finetune_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = tmp_path / "out"
    first = _netlab("finetune", str(config))
    try:
        _wait_round(out / "state.json", 1, first, 120)
        os.kill(first.pid, signal.SIGKILL)  # mid-way through round 2's episode, or between
    finally:
        if first.poll() is None:
            first.kill()
        first.wait()
    # the episode processes die with the learner (PDEATHSIG) and take their labs
    # down: the killed run's own labs, whatever else this machine runs
    _labs_gone(lab_prefix(first.pid))
    state = json.loads((out / "state.json").read_text())
    assert state["round"] == 1
    second = _netlab("finetune", str(config))
    output = second.communicate(timeout=180)[0].decode()
    assert second.returncode == 0, output[-2000:]
    assert "resuming after round 1" in output
    with open(out / "progress.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["round"] for r in rows] == ["1", "2"]
    assert float(rows[0]["steps"]) >= 10 and float(rows[1]["faithful"]) == 1.0
    for row in rows:  # exclusions are counted every round, whatever they were
        assert int(row["left_out"]) == int(row["unfaithful"]) + int(row["failed"]), row
    assert (out / "curves.png").stat().st_size > 5000
    last = out / "checkpoints" / "round-0002.pth"
    policy = load_policy(last)  # the agent's loader, weights_only
    assert policy.info.contract == "rtc-onl4"
    data = torch.load(last, weights_only=True)
    meta = data["metadata"]
    assert meta["finetune"]["round"] == 2 and meta["seed"] == 4
    assert meta["finetune"]["config"]["train"]["count"] == 2
    assert set(meta["versions"]) >= {"netlab", "torch", "numpy", "python"}
    assert {"policy_loss", "value_loss", "approx_kl", "mean_score"} <= set(
        meta["finetune"]["metrics"])
    # the weights changed from the start (PPO took steps)
    start = torch.load(REPO / "models" / "opennetlab-pretrained.pth", weights_only=True)
    assert not torch.equal(start["actor.6.weight"], data["state_dict"]["actor.6.weight"])


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("start: nowhere.pth\nrounds: 1\n")
    with pytest.raises(NetlabError) as caught:
        load_config(path)
    where = caught.value.where or ""
    assert "start" in where and str(path) in where
    path.write_text(f"start: {REPO / 'models' / 'opennetlab-pretrained.pth'}\nroundz: 3\n")
    with pytest.raises(NetlabError) as caught:
        load_config(path)
    assert "roundz" in caught.value.what
    path.write_text(f"start: {REPO / 'models' / 'opennetlab-pretrained.pth'}\nreward: score\n")
    with pytest.raises(NetlabError) as caught:
        load_config(path)
    assert caught.value.where == f"{path}: reward" and "onl, qoe" in (caught.value.fix or "")


def test_weights_are_pushed_into_running_agents(tmp_path: Path) -> None:
    """What ``push_every`` does mid-episode: drain the live agent, hot-load new weights."""
    from netlab.learning.labs import EpisodeSpec, LabPool
    from netlab.learning.scenario_set import EnvConfig

    checkpoint = REPO / "models" / "opennetlab-pretrained.pth"
    spec = EpisodeSpec(EnvConfig(max_bw_mbps=2, bw_ratio=1, change_interval_s=0, duration_s=5,
                                 seed=2), str(tmp_path / "e0"), checkpoint=str(checkpoint),
                       explore=True)
    seen: dict[str, int] = {"loaded": 0, "taken": 0}

    def tick(pool: LabPool) -> None:
        if seen["loaded"] or not pool.controls():
            return
        time.sleep(1.5)  # let a few decisions happen first
        seen["taken"] = sum(len(rows) for rows in pool.take_running())
        seen["loaded"] = pool.push(checkpoint)

    [result] = LabPool(1, lab_prefix="fttp").run([spec], tick)
    assert result.error is None, result.error
    assert seen["loaded"] == 1 and seen["taken"] >= 2
    assert result.run_dir is not None
    agents = json.loads((Path(result.run_dir) / "results.json").read_text())["agents"]
    assert agents[0]["server"]["reloads"] == 1
    # rows taken mid-episode belong to the learner, the rest come with the result
    assert result.transitions is not None
    assert len(result.transitions) + seen["taken"] == agents[0]["server"]["decisions"]


def test_a_fresh_start_clears_what_an_earlier_run_left(tmp_path: Path) -> None:
    from netlab.learning.finetune import Finetuner

    path = tmp_path / "ft.yaml"
    out = tmp_path / "out"
    path.write_text(f"start: {REPO / 'models' / 'opennetlab-pretrained.pth'}\nout: {out}\n")
    for stale in ("episodes/round-0007/e00", "checkpoints", "measure-k/k1-0", "curriculum"):
        (out / stale).mkdir(parents=True)
    for stale in ("progress.csv", "curves.png", "measure-k.jsonl", "state.json", "notes.txt"):
        (out / stale).write_text("old")
    Finetuner(load_config(path))._clear_previous_run()
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only what it did not make
