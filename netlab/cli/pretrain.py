"""``netlab pretrain``: train a policy with PPO in the fast simulator, on bundled traces."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from endpoints.metrics.objectives import REWARDS
from labcore.units import parse_duration, parse_rate
from netlab.cli.sim import add_sim_arguments, base_shape, parsed

NAME = "pretrain"
HELP = ("Train a policy with PPO in the simulator for a few minutes of CPU; writes the "
        "checkpoint and a CSV of training curves, then compares it with OpenNetLab's "
        "pretrained policy and a fixed estimate.")
ONL_CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "opennetlab-pretrained.pth"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--traces", default="opennetlab/*,steps/*",
                        help="comma-separated trace names or patterns (default "
                             "'opennetlab/*,steps/*')")
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="wall-clock training budget (default 3)")
    parser.add_argument("--out", type=Path, default=Path("models/baseline.pth"),
                        help="checkpoint to write (curves go beside it as .csv)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default=None,
                        help="checkpoint to start from (default: a fresh OpenNetLab-shaped "
                             "policy)")
    parser.add_argument("--history", type=int, default=1,
                        help="states per observation of a fresh policy: 1 is OpenNetLab's "
                             "rtc-onl4; N > 1 an rtc-hist policy that sees the last N states "
                             "and answers with a factor on its estimate (default 1)")
    parser.add_argument("--episode", default="30s", help="simulated length of one episode")
    parser.add_argument("--batch", type=int, default=1024, help="steps per PPO update")
    parser.add_argument("--fixed-rate", default="1Mbit",
                        help="the fixed estimate compared against (default 1Mbit)")
    parser.add_argument("--reward", choices=sorted(REWARDS), default="onl",
                        help="onl: OpenNetLab's (log receive rate - 0.2 x loss); qoe: the "
                             "network score's delay, rate and loss terms per step; capacity: "
                             "the same with the rate against the trace's capacity "
                             "(docs/scores.md)")
    add_sim_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from netlab.agent.checkpoints import load_policy
    from netlab.learning.pretrain import PretrainConfig, pretrain
    from netlab.learning.sim import Controller
    from netlab.scenario.model import Estimator

    console = Console(stderr=True)
    config = PretrainConfig(
        traces=tuple(p.strip() for p in args.traces.split(",") if p.strip()),
        minutes=args.minutes, seed=args.seed,
        step_s=parsed(parse_duration, args.step, "--step"),
        episode_s=parsed(parse_duration, args.episode, "--episode"),
        batch_steps=args.batch, start=args.start,
        fixed_rate_bps=float(parsed(parse_rate, args.fixed_rate, "--fixed-rate")),
        reward=args.reward, history=args.history)
    shape = base_shape(args)
    baselines: dict[str, Controller] = {"gcc": Estimator("gcc"),
                                        f"fixed {args.fixed_rate}": config.fixed_rate_bps}
    if ONL_CHECKPOINT.is_file():
        baselines = {"opennetlab-pretrained": load_policy(ONL_CHECKPOINT), **baselines}

    def report(row: dict[str, float]) -> None:
        console.print(f"update {int(row['update']):4d}  {row['wall_s']:6.1f} s  "
                      f"sim {row['sim_s']:8.0f} s  reward {row['episode_reward']:.3f}  "
                      f"policy {row['policy_loss']:+.4f}  value {row['value_loss']:.4f}  "
                      f"kl {row['approx_kl']:.4f}  clip {row['clip_frac']:.2f}  "
                      f"std {row['std']:.3f}")

    console.print(f"pretraining for {args.minutes:g} min on {args.traces} "
                  f"(seed {args.seed}, step {args.step})")
    result = pretrain(replace(config), args.out, baselines=baselines, report=report,
                      link=shape)
    table = Table(title=f"{result.checkpoint}: {result.updates} updates, {result.steps} steps, "
                        f"{result.sim_s:.0f} simulated s in {result.wall_s:.0f} s "
                        f"(curves: {result.curves})")
    for column in ("policy", "mean reward", "network score", "receive rate", "delay p95",
                   "loss"):
        table.add_column(column, justify="right" if column != "policy" else "left")
    for name, row in result.evaluation.items():
        reward = row["mean_reward"]
        score, rate, delay, loss = (float(row[k] or 0.0) for k in (
            "network_score", "recv_rate_bps", "delay_p95_ms", "loss"))
        table.add_row(name, "-" if reward is None else f"{reward:.3f}", f"{score:.2f}",
                      f"{rate / 1e6:.3f} Mbit/s", f"{delay:.1f} ms", f"{loss * 100:.2f} %")
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    return 0
