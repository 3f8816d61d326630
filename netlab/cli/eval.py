"""``netlab eval --policy CKPT --baseline gcc --scenarios FILE... --repeat N``."""

from __future__ import annotations

import argparse
from pathlib import Path

from labcore import units
from netlab.errors import NetlabError

NAME = "eval"
HELP = ("Score policies against a baseline on your scenarios (files, sets, globs, folders) in "
        "real labs: a metric vector per scenario and controller, 95 % intervals, the fraction "
        "of scenarios beating the baseline, exclusions per controller, plots.")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", action="append", required=True, metavar="[NAME=]CKPT",
                        help="policy checkpoint; repeat to compare several (NAME=path names it)")
    parser.add_argument("--baseline", default="gcc", help="rule-based baseline (default gcc)")
    parser.add_argument("--scenarios", nargs="+", required=True, metavar="PATH",
                        help="scenario files (run as written, the controller on their "
                             "'estimator: policy' RTC flows, else on every RTC flow), scenario "
                             "sets (envs, traces, windows or space), finetune configs "
                             "(their --set); "
                             "files, globs or folders")
    parser.add_argument("--set", default="held_out",
                        help="which set of a finetune config (default held_out)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario and controller")
    parser.add_argument("--parallel", type=int, default=2, help="labs at a time (default 2)")
    parser.add_argument("--deadline", type=units.option(units.parse_duration, bare="ms"),
                        default=0.020, help="agent reply budget, e.g. 20ms (a bare number is ms; "
                        "default 20ms); a scenario's own agent keeps its deadline")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"),
                        help="output directory (eval.json, eval.csv, episodes.csv, eval.png, "
                             "eval-pareto.png)")
    parser.add_argument("--keep-unfaithful", action="store_true",
                        help="keep episodes whose fidelity report failed (default: left out, "
                             "and counted per controller either way)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the episodes on a Ray cluster (ADDRESS, auto, or local): "
                             "--parallel labs on each node")
    parser.add_argument("--ray-resource", metavar="NAME",
                        help="with --ray: only nodes that declare this custom resource run labs")


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


def run(args: argparse.Namespace) -> int:
    from netlab.learning.eval_inputs import resolve
    from netlab.learning.evaluate import evaluate, summary_lines
    from netlab.learning.ray_runner import RayLabPool

    if args.repeat < 1:
        raise NetlabError(f"--repeat {args.repeat}", where="--repeat", fix="give 1 or more")
    scenarios = resolve(args.scenarios, args.set)
    pool = (RayLabPool(args.ray, args.parallel, lab_prefix="evr", resource=args.ray_resource,
                       log=print) if args.ray else None)
    try:
        report = evaluate(_policies(args.policy), scenarios, args.out, baseline=args.baseline,
                          repeat=args.repeat, parallel=args.parallel, deadline_s=args.deadline,
                          require_faithful=not args.keep_unfaithful, pool=pool)
    finally:
        if pool is not None:
            pool.shutdown()
    for line in summary_lines(report):
        print(line)
    print(f"details: {args.out / 'eval.json'}, {args.out / 'eval.csv'}, "
          f"{args.out / 'eval.png'}, {args.out / 'eval-pareto.png'}")
    return 0
