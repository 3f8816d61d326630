"""Control API: health, stats, transitions drained, and hot reload under load
with no request lost."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from endpoints.agent_client import AgentClient
from netlab.agent.checkpoints import load_policy
from netlab.agent.client import ControlClient
from netlab.agent.policies.opennetlab import initial_checkpoint
from netlab.agent.policies.spec import MlpActorCritic, make_checkpoint
from tests.netlab.agent.conftest import ONL_CHECKPOINT, RunningAgent

OBS = np.array([2e6, 30.0, 0.02, 1.5e6], dtype=np.float32)


def test_hot_reload_under_load_loses_no_request(
        tmp_path: Path, start_agent: Callable[..., RunningAgent]) -> None:
    other = tmp_path / "initial.pth"
    torch.save(initial_checkpoint(seed=5), other)
    agent = start_agent()
    control = ControlClient(agent.control)
    assert control.health()["ok"]
    clients = [AgentClient(agent.socket, policy="rtc-onl4", obs_size=4, action_size=1,
                           deadline_s=2.0) for _ in range(4)]
    reloads: list[dict[str, object]] = []
    stop = threading.Event()

    def reload_repeatedly() -> None:
        for i in range(6):
            reloads.append(control.load(other if i % 2 == 0 else ONL_CHECKPOINT))
        stop.set()

    reloader = threading.Thread(target=reload_repeatedly)
    reloader.start()
    seen_actions: set[float] = set()
    rounds = 0
    try:
        while not stop.is_set() or rounds < 50:
            for client in clients:
                decision = client.decide(OBS, reward=0.1)
                assert decision.action is not None, client.summary()["last_error"]
                seen_actions.add(round(float(decision.action[0])))
            rounds += 1
    finally:
        reloader.join(60)
        for client in clients:
            client.close()
    assert len(reloads) == 6
    decisions = sum(c.stats.decisions for c in clients)
    assert sum(c.stats.misses for c in clients) == 0
    assert len(seen_actions) == 2  # both policies answered, nothing else
    onl = load_policy(ONL_CHECKPOINT).act(OBS.reshape(1, 4), [None], False).actions[0, 0]
    assert round(float(onl)) in seen_actions
    stats = control.stats()
    assert stats["reloads"] == 6
    assert stats["decisions"] == decisions
    rows = control.drain()
    assert len(rows) == decisions  # one transition per decision, none dropped
    assert set(rows["flow"].tolist()) == {c.flow for c in clients}
    np.testing.assert_allclose(rows["obs"][0], OBS)
    assert (rows["t_reply_ns"] >= rows["t_request_ns"]).all()
    assert len(control.drain()) == 0


def test_reload_refuses_an_incompatible_policy(
        tmp_path: Path, start_agent: Callable[..., RunningAgent]) -> None:
    spec = {"type": "mlp", "actor": [8], "activation": "relu", "output": "identity"}
    wrong = tmp_path / "wrong.pth"
    torch.save(make_checkpoint(MlpActorCritic(3, 2, spec), contract="other", obs_size=3,
                               action_size=2, model_spec=spec), wrong)
    agent = start_agent()
    control = ControlClient(agent.control)
    with pytest.raises(RuntimeError, match="409"):
        control.load(wrong)
    with pytest.raises(RuntimeError, match="400"):
        control.load(tmp_path / "missing.pth")
    assert control.stats()["reloads"] == 0
