"""Pretraining for a few seconds writes a checkpoint the agent loads, its curves,
and an evaluation against the baselines; the CLI commands run end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from netlab.agent.checkpoints import load_policy
from netlab.cli.main import main
from netlab.errors import NetlabError
from netlab.learning.pretrain import PretrainConfig, pretrain, select_traces

REPO = Path(__file__).resolve().parents[3]


def test_a_few_seconds_of_pretraining(tmp_path: Path) -> None:
    config = PretrainConfig(traces=("steps/1-3-1mbit",), minutes=0.05, seed=3, episode_s=4.0,
                            batch_steps=128)
    out = tmp_path / "m" / "baseline.pth"
    result = pretrain(config, out, baselines={"fixed": 1e6})
    policy = load_policy(out)
    assert policy.info.contract == "rtc-onl4" and policy.info.format == "netlab"
    meta = policy.info.metadata
    assert meta["seed"] == 3 and meta["step_ms"] == 200 and meta["updates"] >= 1
    assert set(meta["evaluation"]) == {"trained", "fixed"}
    assert "learner" not in torch.load(out, weights_only=True)  # shipped without optimizer
    with result.curves.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result.updates >= 1
    assert float(rows[-1]["steps"]) >= 128


def test_trace_patterns() -> None:
    names = [t.name for t in select_traces(["steps/*"])]
    assert "steps/1-3-1mbit" in names and all(n.startswith("steps/") for n in names)
    with pytest.raises(NetlabError, match="no trace matches"):
        select_traces(["nothing/*"])


def test_sim_and_pretrain_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = REPO / "models" / "opennetlab-pretrained.pth"
    assert main(["sim", "--policy", str(model), "--trace", "steps/1-3-1mbit",
                 "--duration", "5s", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sim_s"] == 5.0 and result["polls"] >= 20
    assert result["metrics"]["recv_rate_bps"] > 0 and result["scores"]["network"] > 0
    out = tmp_path / "b.pth"
    assert main(["pretrain", "--traces", "steps/1-3-1mbit", "--minutes", "0.02", "--episode",
                 "3s", "--batch", "64", "--out", str(out), "--seed", "1"]) == 0
    assert out.is_file() and out.with_suffix(".csv").is_file()
    table = capsys.readouterr().out
    assert "opennetlab-pretrained" in table and "fixed 1Mbit" in table
    assert main(["sim", "--fixed", "1Mbit", "--trace", "steps/1-3-1mbit",
                 "--step", "5ms"]) == 1  # below the receiver's 10 ms poll floor


def test_pretraining_a_history_policy(tmp_path: Path) -> None:
    config = PretrainConfig(traces=("steps/1-3-1mbit",), updates=1, seed=3, episode_s=4.0,
                            batch_steps=64, history=6)
    out = tmp_path / "hist.pth"
    pretrain(config, out)
    info = load_policy(out).info
    assert (info.contract, info.obs_size, info.step_ms) == ("rtc-hist", 24, 200)
    with pytest.raises(NetlabError) as caught:
        pretrain(PretrainConfig(updates=1, history=99), tmp_path / "bad.pth")
    assert caught.value.where == "--history"
