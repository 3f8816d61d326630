"""``netlab eval --policy CKPT --baseline gcc --scenarios SET --repeat N``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from netlab.errors import NetlabError
from netlab.learning.evaluate import evaluate, summary_lines
from netlab.learning.scenario_set import EnvConfig, load_set

NAME = "eval"
HELP = ("Score policies against a baseline on held-out scenarios in real labs: per-scenario "
        "and aggregate 95 % intervals, fraction of scenarios beating the baseline, plots.")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", action="append", required=True, metavar="[NAME=]CKPT",
                        help="policy checkpoint; repeat to compare several (NAME=path names it)")
    parser.add_argument("--baseline", default="gcc", help="rule-based baseline (default gcc)")
    parser.add_argument("--scenarios", type=Path, required=True,
                        help="a scenario-set YAML (space/count/seed, traces or envs), or a "
                             "finetune config (its held_out set)")
    parser.add_argument("--set", default="held_out",
                        help="which set of a finetune config (default held_out)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario and controller")
    parser.add_argument("--parallel", type=int, default=2, help="labs at a time (default 2)")
    parser.add_argument("--deadline", type=float, default=20.0,
                        help="agent reply budget in ms (default 20)")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"),
                        help="output directory (eval.json, eval.csv, eval.png)")
    parser.add_argument("--keep-unfaithful", action="store_true",
                        help="keep episodes whose fidelity report failed (default: left out)")


def _policies(values: list[str]) -> dict[str, str]:
    named: dict[str, str] = {}
    for i, value in enumerate(values):
        name, sep, path = value.partition("=")
        if not sep:
            name, path = ("policy" if len(values) == 1 else f"policy{i + 1}"), value
        if name in named:
            raise NetlabError(f"policy name {name!r} given twice", where="--policy",
                              fix="name them: --policy start=a.pth --policy tuned=b.pth")
        named[name] = path
    return named


def load_scenarios(path: Path, which: str) -> list[EnvConfig]:
    try:
        data: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise NetlabError(f"cannot read the scenario set: {exc}", where=str(path),
                          fix="give a YAML file") from exc
    if not isinstance(data, dict):
        raise NetlabError("a scenario set is a mapping", where=str(path),
                          fix="see docs/finetune.md, 'Scenario sets'")
    if which in data and isinstance(data[which], dict):
        data = data[which]
    return load_set(data, path.parent, str(path))


def run(args: argparse.Namespace) -> int:
    envs = load_scenarios(args.scenarios, args.set)
    report = evaluate(_policies(args.policy), envs, args.out, baseline=args.baseline,
                      repeat=args.repeat, parallel=args.parallel,
                      deadline_s=args.deadline / 1e3,
                      require_faithful=not args.keep_unfaithful)
    for line in summary_lines(report):
        print(line)
    print(f"details: {args.out / 'eval.json'}, {args.out / 'eval.csv'}, {args.out / 'eval.png'}")
    return 0
