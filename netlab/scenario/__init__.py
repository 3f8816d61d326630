"""Scenario files: load, validate and type them.

``load_scenario`` either returns a fully checked :class:`Scenario` or raises
:class:`ScenarioInvalid` listing every problem in the file; it has no side
effects, so nothing is ever created for an invalid scenario.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from netlab.errors import NetlabError
from netlab.scenario.fields import Context
from netlab.scenario.loader import MAX_SCENARIO_BYTES, compose
from netlab.scenario.model import Scenario
from netlab.scenario.problems import Problem, ProblemLog, ScenarioInvalid

__all__ = ["Problem", "Scenario", "ScenarioInvalid", "load_scenario", "load_scenario_text"]


def load_scenario(path: Path, *, files: Mapping[str, str] | None = None) -> Scenario:
    """Read and validate the scenario file at ``path`` (errors name it as given).

    ``files`` maps paths the file writes (traces, agent checkpoints) to where
    they really are: copies shipped with the file to another machine."""
    try:
        with open(path, "rb") as handle:  # at most the budget: /dev/zero has no end
            raw = handle.read(MAX_SCENARIO_BYTES + 1)
        if len(raw) > MAX_SCENARIO_BYTES:
            raise NetlabError(
                f"scenario file {path} is over {MAX_SCENARIO_BYTES >> 20} MiB",
                where=str(path),
                fix="a scenario is a page of YAML: split it, or generate scenarios in code")
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise NetlabError(
            f"scenario file {path} does not exist",
            where=str(path),
            fix="check the path; example scenarios are in scenarios/",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise NetlabError(
            f"cannot read scenario file {path}: {exc}",
            where=str(path),
            fix="make the file readable UTF-8 text",
        ) from exc
    return _load(text, str(path), path, files or {})


def load_scenario_text(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario YAML given as text; ``source`` names it in messages."""
    return _load(text, source, None, {})


def _load(text: str, source: str, path: Path | None, files: Mapping[str, str]) -> Scenario:
    log = ProblemLog(source)
    root = compose(text, log)
    if root is None:
        if not log:
            log.add(1, "", "a scenario (name, duration, hosts, ...)", "an empty document")
        log.raise_if_any()
    assert root is not None
    # Imported here: the flow kinds (netlab.run.kinds) read netlab.scenario's
    # field types, and the validator reads the kinds' fields.
    from netlab.scenario.validate import build_scenario

    scenario = build_scenario(root, Context(log, path.parent if path else None, files), path)
    log.raise_if_any()
    assert scenario is not None
    return scenario
