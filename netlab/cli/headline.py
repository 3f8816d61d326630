"""``netlab headline STAGE CONFIG [--seed N ...]``: the headline experiment, one stage at a time."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from netlab.errors import NetlabError

NAME = "headline"
HELP = ("The headline experiment (docs/finetune.md): lock the test set, train the start, "
        "simulator and lab arms, evaluate them with GCC on the locked test set, and write "
        "headline.json with bootstrap intervals.")
STAGES = ("lock", "start", "sim", "emu", "emu-from-sim", "eval", "report")
SEEDED = ("sim", "emu", "emu-from-sim")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGES, help="which stage to run")
    parser.add_argument("config", type=Path, help="headline YAML (configs/headline.yaml)")
    parser.add_argument("--seed", type=int, action="append", default=[],
                        help="training seed(s) for sim, emu and emu-from-sim "
                             "(default: every seed of the config)")


def run(args: argparse.Namespace) -> int:
    from netlab.learning import headline

    console = Console(stderr=True)
    config = headline.load_headline(args.config)
    seeds = args.seed or list(config.seeds)
    unknown = [s for s in seeds if s not in config.seeds]
    if args.stage in SEEDED and unknown:
        raise NetlabError(f"seed {unknown[0]} is not one of the config's seeds "
                          f"{list(config.seeds)}", where="--seed",
                          fix="add it to seeds: in the config, or leave --seed out")

    def report(row: dict[str, float]) -> None:
        console.print(f"update {int(row['update']):4d}  {row['wall_s']:6.1f} s  "
                      f"reward {row['episode_reward']:.3f}  kl {row['approx_kl']:.4f}")

    if args.stage == "lock":
        console.print(f"locked: {headline.lock(config)}")
    elif args.stage == "start":
        console.print(f"start: {headline.run_start(config, report)}")
    elif args.stage == "sim":
        for seed in seeds:
            console.print(f"seed {seed}: {headline.run_sim(config, seed, report)}")
    elif args.stage in ("emu", "emu-from-sim"):
        for seed in seeds:
            done = headline.run_emu(config, seed, from_sim=args.stage == "emu-from-sim",
                                    log=console.print)
            console.print(f"seed {seed}: {done}")
    elif args.stage == "eval":
        console.print(f"evaluated: {headline.run_eval(config)}")
    else:
        path = headline.write_report(config)
        for line in headline.summary_lines(json.loads(path.read_text())):
            print(line)
        console.print(f"written: {path}")
    return 0
