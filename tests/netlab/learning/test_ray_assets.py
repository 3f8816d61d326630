"""What crosses between the head and a Ray worker: specs without head paths, files by
content, episode folders back (no Ray needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from netlab.learning import ray_assets
from netlab.learning.labs import EpisodeSpec
from netlab.learning.scenario_file import ScenarioFile, with_controller
from netlab.learning.scenario_set import EnvConfig

REPO = Path(__file__).resolve().parents[3]
CHECKPOINT = REPO / "models" / "opennetlab-pretrained.pth"


def _scenario(tmp_path: Path) -> ScenarioFile:
    head = tmp_path / "head"
    head.mkdir()
    shutil.copy(REPO / "traces" / "cellular" / "3g-synthetic-hsdpa-1.json", head / "t.json")
    text = (REPO / "scenarios" / "hsdpa-call.yaml").read_text()
    (head / "call.yaml").write_text(text.replace("../traces/cellular/3g-synthetic-hsdpa-1.json",
                                                 "t.json"))
    return ScenarioFile.load(head / "call.yaml")


def test_a_spec_leaves_the_head_without_its_paths(tmp_path: Path) -> None:
    source = _scenario(tmp_path)
    spec = EpisodeSpec(source, str(tmp_path / "out" / "episodes" / "onl-s000-r0"),
                       checkpoint=str(CHECKPOINT))
    data, files = ray_assets.portable(spec)
    text = json.dumps(data)
    assert str(tmp_path) not in text and str(REPO) not in text, text
    assert sorted(p.name for p in files.values()) == ["call.yaml", "opennetlab-pretrained.pth",
                                                      "t.json"]
    # The worker: each asset written once under its key, the spec pointed there.
    worker = tmp_path / "worker"
    local = {}
    for key, path in files.items():
        local[key] = worker / "assets" / key
        local[key].parent.mkdir(parents=True, exist_ok=True)
        local[key].write_bytes(path.read_bytes())
    there = ray_assets.localised(data, local, worker / "episodes")
    assert there.directory.startswith(str(worker / "episodes"))
    assert isinstance(there.env, ScenarioFile) and there.env.path.startswith(str(worker))
    scenario, ids = with_controller(there.env, lab="fte0", estimator="policy",
                                    checkpoint=there.checkpoint, deadline_s=0.02)
    assert ids == ["call"] and scenario.links[0].up.trace == str(local[
        ray_assets.asset_key(tmp_path / "head" / "t.json")])
    # The same content ships under the same key; a changed file under a new one.
    assert ray_assets.portable(spec)[1].keys() == files.keys()
    env = EnvConfig(trace=str(tmp_path / "head" / "t.json"))
    data, files = ray_assets.portable(EpisodeSpec(env, str(tmp_path / "e")))
    assert data["env"]["trace"].startswith(ray_assets.ASSET) and len(files) == 1


def test_episode_folders_come_back_without_oversized_files(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    folder = tmp_path / "episode"
    (folder / "runs" / "r1").mkdir(parents=True)
    (folder / "runs" / "r1" / "results.json").write_text("{}")
    (folder / "capture.pcap").write_bytes(b"x" * 64)
    monkeypatch.setattr(ray_assets, "MAX_ARTEFACT_FILE_BYTES", 32)
    blob = ray_assets.pack(folder)
    ray_assets.unpack(blob, tmp_path / "back")
    assert (tmp_path / "back" / "runs" / "r1" / "results.json").read_text() == "{}"
    assert not (tmp_path / "back" / "capture.pcap").exists()
    assert "capture.pcap" in (tmp_path / "back" / ray_assets.MANIFEST).read_text()
