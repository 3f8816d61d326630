"""The tcp-mi5 policy: a fresh checkpoint in the own format (function, CLI, the
shipped file), and the sender's ``--policy`` value the lab derives from an agent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from endpoints.agent_tcp import CONTRACT, OBS_SIZE, parse_policy_option
from netlab.agent.checkpoints import load_policy, policy_from_object
from netlab.agent.lab import AgentSet, RunningAgent, _initial_tcp_checkpoint
from netlab.agent.policies.tcp_mi5 import initial_checkpoint
from netlab.scenario.model import Agent

REPO = Path(__file__).resolve().parents[3]


def test_fresh_policy_serves_the_contract_with_bounded_actions() -> None:
    policy = policy_from_object(initial_checkpoint(seed=1), "fresh")
    info = policy.info
    assert (info.contract, info.obs_size, info.action_size, info.recurrent) == (
        CONTRACT, OBS_SIZE, 1, False)
    rng = np.random.default_rng(0)
    obs = np.column_stack([rng.uniform(-1, 10, 256), rng.uniform(1, 100, 256),
                           rng.uniform(0, 5, 256), rng.uniform(0, 1, 256),
                           rng.uniform(0, 1, 256)]).astype(np.float32)
    out = policy.act(obs, [None] * len(obs), explore=False)
    assert out.actions.shape == (256, 1)
    assert np.all(np.abs(out.actions) <= 1) and np.any(out.actions != 0)
    assert np.all(np.isfinite(out.value))
    explored = policy.act(obs, [None] * len(obs), explore=True)
    assert not np.allclose(explored.actions, out.actions)  # exploration samples


def test_seed_decides_the_weights_and_leaves_torch_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = initial_checkpoint(1), initial_checkpoint(1), initial_checkpoint(2)
    assert torch.rand(1) == expected_next
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key])
    assert not torch.equal(a["state_dict"]["actor.0.weight"], c["state_dict"]["actor.0.weight"])


def test_cli_init_writes_a_loadable_checkpoint_and_keeps_existing_files(tmp_path: Path) -> None:
    out = tmp_path / "p.pth"
    argv = [sys.executable, "-m", "netlab.cli.main", "agent", "init", "--contract", "tcp-mi5",
            "--out", str(out), "--seed", "1"]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "tcp-mi5" in first.stdout
    policy = load_policy(out)
    assert policy.info.contract == "tcp-mi5" and policy.info.format == "netlab"
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "--force" in again.stderr
    forced = subprocess.run([*argv, "--force"], capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0, forced.stderr


def test_shipped_checkpoint_is_the_documented_fresh_policy() -> None:
    shipped = torch.load(REPO / "models" / "tcp-mi5-init.pth", weights_only=True)
    fresh = initial_checkpoint(seed=1)
    assert shipped["contract"] == CONTRACT and shipped["model"] == fresh["model"]
    for key, value in fresh["state_dict"].items():
        assert torch.equal(shipped["state_dict"][key], value)


@pytest.mark.parametrize(("fallback", "sender_fallback"),
                         [("keep", "keep"), ("kernel", "kernel"), ("gcc", "kernel")])
def test_tcp_sender_option_from_the_agent(tmp_path: Path, fallback: str,
                                          sender_fallback: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    agents = AgentSet(tmp_path)
    agents.agents["alice"] = RunningAgent(Agent("alice", None, 0.0005, fallback), "ns",
                                          tmp_path / "alice.sock", tmp_path / "alice.ctl",
                                          tmp_path, None, proc)
    options = parse_policy_option(agents.tcp_sender("alice", 2))
    assert options.socket == str(tmp_path / "alice.sock")
    assert options.deadline_s == pytest.approx(0.0005)
    assert options.fallback == sender_fallback
    assert options.interval_s == pytest.approx(0.1) and options.flow == 3
    with pytest.raises(Exception, match="no agent runs on 'bob'"):
        agents.tcp_sender("bob", 0)


def test_agent_without_checkpoint_gets_a_fresh_tcp_policy(tmp_path: Path) -> None:
    path = _initial_tcp_checkpoint(tmp_path, seed=7)
    assert load_policy(path).info.contract == CONTRACT
