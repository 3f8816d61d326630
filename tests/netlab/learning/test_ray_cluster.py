"""Ray with more than one node: a head and a second raylet on this machine, joined with
``ray start --address``, each with its own resources.

Work is forced onto the second node by its custom resource; the specs it gets
name no path of the head (the scenario file, its trace and the checkpoint travel
through the object store); each episode's folder comes back; a curriculum search
runs on the cluster and survives the second node's raylet killed mid-round (the
lost episodes run again on the head). Every Ray process the test started is
ended by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from netlab.learning.curriculum import EmulatedGap
from netlab.learning.eval_inputs import resolve
from netlab.learning.evaluate import evaluate
from netlab.learning.scenario_set import EnvConfig

ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
from tests.netlab.learning.ray_cluster import (  # noqa: E402  (after the skip)
    WORKER_RESOURCE,
    Cluster,
    start_cluster,
)

REPO = Path(__file__).resolve().parents[3]
CHECKPOINT = REPO / "models" / "opennetlab-pretrained.pth"


def _reload_auth() -> None:
    """Ray reads its auth mode and token once per process; this driver changes them
    (to the cluster's own token, and back after), so it asks Ray to read them again."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = start_cluster()
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update({k: started.env[k] for k in saved})
    _reload_auth()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        ray.init(address=started.address, log_to_driver=False)
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.monotonic() < deadline, "the second node never joined"
            time.sleep(0.3)
        yield started
    finally:
        ray.shutdown()
        for sig, handler in handlers.items():  # ray.init installs its own in this process
            signal.signal(sig, handler)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reload_auth()
        left = started.stop()
        assert not left, f"ray processes still alive: {left}"


def _worker_node() -> str:
    [node] = [n["NodeID"] for n in ray.nodes()
              if n["Alive"] and n["Resources"].get(WORKER_RESOURCE)]
    return str(node)


def test_eval_runs_on_the_worker_with_shipped_files(cluster: Cluster, tmp_path: Path) -> None:
    from netlab.learning.ray_runner import RayLabPool

    # The user's scenario names its trace relative to itself, beside it in a folder
    # of the head's that no worker can see.
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(REPO / "traces" / "cellular" / "3g-synthetic-hsdpa-1.json", mine / "hsdpa.json")
    text = (REPO / "scenarios" / "hsdpa-call.yaml").read_text()
    (mine / "call.yaml").write_text(text.replace("duration: 15s", "duration: 4s").replace(
        "../traces/cellular/3g-synthetic-hsdpa-1.json", "hsdpa.json"))
    scenarios = resolve([str(mine / "call.yaml")])
    worker = _worker_node()
    pool = RayLabPool(cluster.address, 2, lab_prefix="ftrc", resource=WORKER_RESOURCE)
    try:
        [node] = pool.nodes()
        assert node["node_id"] == worker
        report = evaluate({"onl": CHECKPOINT}, scenarios, tmp_path / "out", repeat=1,
                          pool=pool, require_faithful=False)
    finally:
        pool.shutdown()
    assert not Path(node["work"]).exists()  # the runner cleaned up after itself
    episodes = (tmp_path / "out" / "episodes.csv").read_text().splitlines()
    assert len(episodes) == 3 and all(line.endswith(worker) for line in episodes[1:]), episodes
    for name in ("onl", "gcc"):
        assert report.totals(name).failed == 0, (name, episodes)
        folder = tmp_path / "out" / "episodes" / f"{name}-s000-r0"
        [results] = folder.glob("runs/*/results.json")  # collected back from the worker
        assert json.loads(results.read_text())["flows"][0]["metrics"]["recv_rate_bps"] > 0
        sent = (folder / "spec.json").read_text()  # what the worker ran
        assert str(tmp_path) not in sent and str(REPO) not in sent, sent
        spec = json.loads(sent)
        assert "/assets/" in spec["env"]["scenario_file"]
        assert list(spec["env"]["files"]) == ["hsdpa.json"]
        if name == "onl":
            assert "/assets/" in spec["checkpoint"]


def _labs_under(cluster: Cluster) -> int:
    """Episode processes the worker node runs now."""
    assert cluster.worker is not None
    cluster.note()
    raylet = cluster.raylet(cluster.worker)
    return sum("netlab.learning.labs" in " ".join(p.cmdline())
               for p in raylet.children(recursive=True))


def test_curriculum_gap_survives_the_worker_killed_mid_round(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    from netlab.learning.ray_runner import RayLabPool

    logged: list[str] = []
    pool = RayLabPool(cluster.address, 1, lab_prefix="ftrk", log=logged.append)
    assert len(pool.runners) == 2  # head and worker
    gap = EmulatedGap(CHECKPOINT, tmp_path / "gap", k=2, pool=pool, require_faithful=False)
    env = EnvConfig(max_bw_mbps=2.0, bw_ratio=1.5, change_interval_s=1, delay_ms=15,
                    queue_pkt=40, duration_s=3, seed=5)
    answer: list[float] = []
    failure: list[BaseException] = []

    def search_point() -> None:
        try:
            answer.append(gap(env))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=search_point)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while _labs_under(cluster) == 0:  # an episode is running on the worker
            assert time.monotonic() < deadline and thread.is_alive(), (failure, logged)
            time.sleep(0.2)
        assert cluster.worker is not None
        raylet = cluster.raylet(cluster.worker)
        os.kill(raylet.pid, 9)  # the node dies mid-episode
        psutil.wait_procs([raylet], timeout=10)
        thread.join(timeout=150)
    finally:
        pool.shutdown()
    assert not thread.is_alive() and not failure, (failure, logged)
    assert pool.reruns >= 1 and logged, logged
    [value] = answer
    assert -70 <= value <= 70
    # Every episode of the search ran to the end (on the head once the worker died),
    # each counted once per controller.
    for name in ("policy", "gcc"):
        assert gap.counts[name].ran == 2 and gap.counts[name].failed == 0, gap.counts
