"""What ``netlab eval --scenarios`` accepts, and the exact error for what it refuses.

Each ``eval_inputs/refused/NAME.yaml`` sits beside ``NAME.txt``, the rendered
error. After changing a message on purpose, regenerate with
``NETLAB_UPDATE_GOLDENS=1 pytest tests/netlab/learning/test_eval_inputs.py``
and review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlab.errors import NetlabError
from netlab.learning.eval_inputs import resolve
from netlab.learning.scenario_file import ScenarioFile
from netlab.learning.scenario_set import EnvConfig

HERE = Path(__file__).parent
REFUSED = sorted((HERE / "eval_inputs" / "refused").glob("*.yaml"))
UPDATE = os.environ.get("NETLAB_UPDATE_GOLDENS") == "1"
REPO = HERE.parents[2]


@pytest.fixture
def in_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)  # messages name files as given: goldens stay portable


def _refusal(argument: str) -> str:
    with pytest.raises(NetlabError) as caught:
        resolve([argument])
    return caught.value.render()


@pytest.mark.parametrize("path", REFUSED, ids=[p.stem for p in REFUSED])
def test_refused_file_matches_golden(in_here: None, path: Path) -> None:
    rendered = _refusal(str(path.relative_to(HERE)))
    golden = path.with_suffix(".txt")
    if UPDATE:
        golden.write_text(rendered + "\n", encoding="utf-8")
    assert golden.exists(), f"no golden for {path.name}; run with NETLAB_UPDATE_GOLDENS=1"
    assert rendered + "\n" == golden.read_text(encoding="utf-8")
    assert path.name in rendered  # every refusal names the file


def test_refused_arguments_name_what_was_given(in_here: None, tmp_path: Path) -> None:
    assert _refusal("eval_inputs/missing.yaml") == (
        "error: eval_inputs/missing.yaml does not exist\n"
        "  where: --scenarios eval_inputs/missing.yaml\n"
        "  fix: give a scenario file, a scenario set, a finetune config, a glob or a folder")
    assert _refusal("eval_inputs/*.yml") == (
        "error: no file matches 'eval_inputs/*.yml'\n"
        "  where: --scenarios eval_inputs/*.yml\n"
        "  fix: check the pattern (quote it to let netlab expand it)")
    empty = tmp_path / "none"
    empty.mkdir()
    assert f"folder {empty} has no .yaml or .yml file" in _refusal(str(empty))


def test_a_plain_scenario_file_is_itself(tmp_path: Path) -> None:
    [chosen] = resolve([str(REPO / "scenarios" / "hsdpa-call.yaml")])
    assert isinstance(chosen.env, ScenarioFile)
    assert chosen.name == "hsdpa-call" and chosen.env.duration_s == 15.0
    assert chosen.source.endswith("hsdpa-call.yaml")


def test_sets_configs_folders_and_globs(tmp_path: Path) -> None:
    (tmp_path / "set.yaml").write_text("envs: [{max_bw_mbps: 2, seed: 1}, {max_bw_mbps: 3}]\n")
    (tmp_path / "call.yml").write_text(
        (REPO / "scenarios" / "hsdpa-call.yaml").read_text().replace(
            "../traces/", f"{REPO}/traces/"))
    (tmp_path / "notes.txt").write_text("not yaml: ignored by the folder")
    found = resolve([str(tmp_path)])
    assert [type(s.env) for s in found] == [ScenarioFile, EnvConfig, EnvConfig]
    # The same file named again (glob, path) runs once.
    assert len(resolve([str(tmp_path / "*.yaml"), str(tmp_path / "set.yaml")])) == 2
    held_out = resolve([str(REPO / "configs" / "finetune-tiny.yaml")])
    train = resolve([str(REPO / "configs" / "finetune-tiny.yaml")], "train")
    assert len(held_out) == 2 and len(train) == 4
    assert all(isinstance(s.env, EnvConfig) and s.env.duration_s == 6 for s in held_out)


def test_scenarios_that_share_a_name_are_told_apart(tmp_path: Path) -> None:
    text = (REPO / "scenarios" / "hsdpa-call.yaml").read_text().replace("../traces/",
                                                                        f"{REPO}/traces/")
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(text)
    names = [s.name for s in resolve([str(tmp_path)])]
    assert names == [f"hsdpa-call ({tmp_path / 'a.yaml'})", f"hsdpa-call ({tmp_path / 'b.yaml'})"]
