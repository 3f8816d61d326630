"""``netlab finetune CONFIG``: PPO fine-tuning of a policy in real labs."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from netlab.learning.finetune import Finetuner, load_config

NAME = "finetune"
HELP = ("Fine-tune a policy with PPO in real labs (K in parallel, or on Ray); checkpoints, "
        "curves, resume after a kill.")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="finetune YAML (see configs/finetune-*.yaml)")
    parser.add_argument("--out", help="output directory (overrides the config's out)")
    parser.add_argument("--rounds", type=int, help="number of PPO updates (overrides rounds)")
    parser.add_argument("--parallel", help="labs at a time, or auto (overrides parallel)")
    parser.add_argument("--start", help="checkpoint to start from (overrides start)")
    parser.add_argument("--fresh", action="store_true",
                        help="start over even if the output directory has a state to resume")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the labs on a Ray cluster (ADDRESS, auto, or local)")
    parser.add_argument("--ray-cpus", type=int, default=2,
                        help="CPUs of a --ray local cluster (default 2)")
    parser.add_argument("--ray-resource", metavar="NAME",
                        help="run labs only on the Ray nodes that declare this custom resource "
                             "(ray start --resources '{\"NAME\": 1}')")


def run(args: argparse.Namespace) -> int:
    parallel: int | str | None = None
    if args.parallel is not None:
        parallel = args.parallel if args.parallel == "auto" else int(args.parallel)
    overrides = {"out": str(Path(args.out).resolve()) if args.out else None,
                 "rounds": args.rounds, "parallel": parallel,
                 "start": str(Path(args.start).resolve()) if args.start else None}
    config = load_config(args.config, overrides)
    console = Console(stderr=True)
    tuner = Finetuner(config, log=console.print)
    if args.ray:
        from netlab.learning.ray_runner import RayLabPool

        pools: dict[int, RayLabPool] = {}

        def make_pool(k: int, prefix: str) -> RayLabPool:
            if k not in pools:
                pools[k] = RayLabPool(args.ray, k, lab_prefix=prefix[:6] + "r",
                                      num_cpus=args.ray_cpus, resource=args.ray_resource,
                                      log=console.print)
            return pools[k]

        tuner.make_pool = make_pool
    checkpoint = tuner.run(resume=not args.fresh)
    console.print(f"[green]done[/green]: {checkpoint}; curves in {config.out / 'curves.png'}, "
                  f"progress in {config.out / 'progress.csv'}")
    return 0
