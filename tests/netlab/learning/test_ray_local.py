"""The Ray path: a local cluster (``ray.init(num_cpus=2)``), one lab-runner actor per
node, a real episode run by the actor and its transitions shipped back."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from netlab.learning.labs import EpisodeSpec
from netlab.learning.scenario_set import EnvConfig

ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def cluster() -> Iterator[None]:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        for sig, handler in handlers.items():  # ray.init installs its own in this process
            signal.signal(sig, handler)


def test_lab_runner_actor_runs_an_episode(cluster: None, tmp_path: Path) -> None:
    from netlab.learning.ray_runner import RayLabPool

    pool = RayLabPool("local", 1, lab_prefix="fttr")
    try:
        nodes = pool.nodes()
        assert len(nodes) == 1 and nodes[0]["euid"] == 0
        spec = EpisodeSpec(EnvConfig(max_bw_mbps=2, bw_ratio=1, change_interval_s=0,
                                     duration_s=4, seed=1), str(tmp_path / "e0"),
                           checkpoint=str(REPO / "models" / "opennetlab-pretrained.pth"),
                           explore=True)
        [result] = pool.run([spec])
    finally:
        pool.shutdown()
    assert result.error is None, result.error
    assert result.faithful and result.score is not None and result.score > 0
    assert result.transitions is not None and len(result.transitions) >= 10
    assert result.spec is spec
