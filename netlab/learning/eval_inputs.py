"""What ``netlab eval --scenarios`` accepts, and what it refuses.

Each argument is a file, a glob or a folder (its ``*.yaml``/``*.yml``, in
name order). Each file is one of three things, told apart by its keys:

* a scenario (``hosts``, ``links``, ``flows``): run as written, with the
  controller under test on its RTC flows (:mod:`netlab.learning.scenario_file`);
* a scenario set (``envs``, ``traces``, ``windows``, ``space`` or ``count``): its
  environments (:mod:`netlab.learning.scenario_set`);
* a finetune config (``start``, ``train``, ``held_out``): the set ``--set``
  names in it.

Anything else is refused naming the file: guessing is how a scenario once
became eight random environments of the default space.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netlab.errors import NetlabError
from netlab.learning.labs import Environment
from netlab.learning.scenario_file import ScenarioFile
from netlab.learning.scenario_set import load_set
from netlab.scenario.loader import load_yaml_file

SCENARIO_KEYS = frozenset({"hosts", "links", "flows"})
SET_MARKERS = frozenset({"envs", "traces", "space", "count", "windows"})
SET_KEYS = SET_MARKERS | {"seed", "duration_s", "delay_ms", "queue_pkt", "loss_pct", "shapes"}
FINETUNE_KEYS = frozenset({"start", "train", "held_out"})
YAML_SUFFIXES = (".yaml", ".yml")
FORMATS = ("a scenario has hosts, links and flows; a scenario set has envs, traces, windows "
           "or space (docs/finetune.md, 'Scenario sets'); a finetune config has train and held_out")


@dataclass(frozen=True)
class EvalScenario:
    """One scenario of an evaluation: its name in reports, where it came from."""

    name: str
    env: Environment
    source: str


def _files(argument: str) -> list[Path]:
    path = Path(argument).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())
        if not found:
            raise NetlabError(f"folder {argument} has no .yaml or .yml file",
                              where=f"--scenarios {argument}",
                              fix="give a folder of scenario files, or the files themselves")
        return found
    if glob.has_magic(argument):
        matches = sorted(Path(m) for m in glob.glob(str(path)) if Path(m).is_file())
        if not matches:
            raise NetlabError(f"no file matches {argument!r}", where=f"--scenarios {argument}",
                              fix="check the pattern (quote it to let netlab expand it)")
        return matches
    if not path.is_file():
        raise NetlabError(f"{argument} does not exist", where=f"--scenarios {argument}",
                          fix="give a scenario file, a scenario set, a finetune config, a "
                              "glob or a folder")
    return [path]


def _environments(path: Path, which: str) -> list[Environment]:
    data: Any = load_yaml_file(path, "scenario", "give a readable YAML file")
    keys = set(data) if isinstance(data, dict) else set()
    if keys & SCENARIO_KEYS:
        return [ScenarioFile.load(path)]
    if keys & FINETUNE_KEYS:
        chosen = data.get(which)
        if not isinstance(chosen, dict):
            raise NetlabError(f"finetune config {path} has no {which!r} set", where=str(path),
                              fix="choose another with --set (train or held_out)")
        return list(load_set(chosen, path.parent, f"{path}: {which}"))
    if keys & SET_MARKERS:
        unknown = sorted(keys - SET_KEYS)
        if unknown:
            raise NetlabError(f"scenario set {path} has unknown keys {unknown}", where=str(path),
                              fix=f"use only {', '.join(sorted(SET_KEYS))}")
        return list(load_set(data, path.parent, str(path)))
    found = (f"keys {sorted(keys)}" if keys else
             "an empty file" if data is None else f"a YAML {type(data).__name__}")
    raise NetlabError(f"{path} is not a scenario, a scenario set or a finetune config "
                      f"({found})", where=str(path), fix=FORMATS)


def resolve(arguments: Sequence[str], which: str = "held_out") -> list[EvalScenario]:
    """Every scenario the arguments name, in order; a file named twice runs once,
    and scenarios that share a name are told apart by their file."""
    seen: set[Path] = set()
    found: list[tuple[Environment, Path]] = []
    for argument in arguments:
        for path in _files(argument):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            found += [(env, path) for env in _environments(path, which)]
    if not found:
        raise NetlabError("no scenarios to evaluate", where="--scenarios",
                          fix="give at least one scenario or a non-empty set")
    counts: dict[str, int] = {}
    for env, _ in found:
        counts[env.label] = counts.get(env.label, 0) + 1
    return [EvalScenario(env.label if counts[env.label] == 1 else f"{env.label} ({path})",
                         env, str(path)) for env, path in found]
