"""Bad scenarios and the exact messages they must produce.

Each ``bad/NAME.yaml`` sits next to ``bad/NAME.txt``, the full rendered
error (header, one line per problem, fix hint).  After changing messages on
purpose, regenerate with ``NETLAB_UPDATE_GOLDENS=1 pytest tests/scenario``
and review the diff of the ``.txt`` files like code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from netlab.cli.main import main
from netlab.scenario import ScenarioInvalid, load_scenario

HERE = Path(__file__).parent
BAD = sorted((HERE / "bad").glob("*.yaml"))
UPDATE = os.environ.get("NETLAB_UPDATE_GOLDENS") == "1"
PROBLEM_LINE = re.compile(r"^bad/[a-z0-9-]+\.yaml(:\d+)?: \S.*: expected .+, found .+$")


@pytest.fixture(autouse=True)
def _in_test_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages name files as given; loading "bad/x.yaml" from here keeps goldens portable.
    monkeypatch.chdir(HERE)


def _render(path: Path) -> str:
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path.relative_to(HERE))
    return caught.value.render()


def test_there_are_enough_bad_scenarios() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_scenario_matches_golden(path: Path) -> None:
    rendered = _render(path)
    golden = path.with_suffix(".txt")
    if UPDATE:
        golden.write_text(rendered + "\n", encoding="utf-8")
    assert golden.exists(), f"no golden for {path.name}; run with NETLAB_UPDATE_GOLDENS=1"
    assert rendered + "\n" == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_message_shape(path: Path) -> None:
    """Header with the right count, one located line per problem, then the fix."""
    lines = _render(path).splitlines()
    problems = lines[1:-1]
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    assert lines[0] == f"error: bad/{path.name} is not a valid scenario ({count} {noun})"
    assert lines[-1].startswith("  fix: ")
    for line in problems:
        assert PROBLEM_LINE.match(line), line
    # Every problem in these files has a known line.
    assert all(re.match(r"^bad/\S+\.yaml:\d+: ", line) for line in problems)


def test_kitchen_sink_reports_every_problem_at_once() -> None:
    problems = _render(HERE / "bad" / "kitchen-sink.yaml").splitlines()[1:-1]
    paths = [line.split(": ")[1] for line in problems]
    assert paths == [
        "name",
        "links[0].up.delay",
        "links[0].down.los",
        "flows[0].to",
        "flows[1].stop",
        "flows[2].estimator",
    ]


def test_validate_command_prints_the_golden_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "bad/kitchen-sink.yaml"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (HERE / "bad" / "kitchen-sink.txt").read_text(encoding="utf-8")


def test_validate_command_with_several_files_reports_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = HERE.parents[1] / "scenarios" / "two-hosts.yaml"
    assert main(["validate", str(good), "bad/self-link.yaml", "bad/empty.yaml"]) == 1
    captured = capsys.readouterr()
    assert "valid scenario 'two-hosts'" in captured.out
    assert "error: bad/self-link.yaml is not a valid scenario" in captured.err
    assert "error: bad/empty.yaml is not a valid scenario" in captured.err
