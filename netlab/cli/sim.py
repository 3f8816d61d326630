"""``netlab sim``: one simulated call under a policy (or a fixed estimate) over a trace."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from labcore.units import UnitError, parse_duration, parse_percent, parse_queue_limit, parse_rate
from netlab.errors import NetlabError
from shaping.spec import LinkShape

NAME = "sim"
HELP = ("Run one call in the fast simulator (the lab's own RTC sender and receiver, "
        "estimators, queue code and scores on a simulated clock) and print its metrics.")
T = TypeVar("T")


def parsed(parse: Callable[[str], T], text: str, option: str) -> T:
    """A unit string parsed, or a NetlabError naming the option."""
    try:
        return parse(text)
    except UnitError as exc:
        raise NetlabError(str(exc), where=option, fix="write a value with its unit, e.g. "
                          "20ms, 3Mbit, 60pkt, 0.5%") from None


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``sim`` and ``pretrain``: the step and the link's base shape."""
    parser.add_argument("--step", default="200ms",
                        help="receiver poll / decision interval (default 200ms, the lab's; "
                             "OpenNetLab's gym uses 60ms)")
    parser.add_argument("--delay", default=None,
                        help="one-way delay where the trace has none (e.g. 20ms)")
    parser.add_argument("--queue", default=None,
                        help="bottleneck queue (e.g. 60pkt or 64kB; default: the trace's, "
                             "else one BDP at its mean rate, as the lab)")
    parser.add_argument("--loss", default=None, help="random loss where the trace has none")


def base_shape(args: argparse.Namespace) -> LinkShape:
    return LinkShape(
        delay_s=parsed(parse_duration, args.delay, "--delay") if args.delay else 0.0,
        loss=parsed(parse_percent, args.loss, "--loss") if args.loss else 0.0,
        queue=parsed(parse_queue_limit, args.queue, "--queue") if args.queue else None)


def configure(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--policy", help="checkpoint to run (netlab, OpenNetLab or TorchScript)")
    who.add_argument("--fixed", help="a fixed estimate instead of a policy (e.g. 1Mbit)")
    who.add_argument("--gcc", action="store_true",
                     help="GCC instead of a policy: the lab's sender-side GCC on transport "
                          "feedback (a scenario's estimator: gcc)")
    parser.add_argument("--trace", required=True, help="trace name (netlab traces list) or file")
    parser.add_argument("--duration", default=None,
                        help="simulated time (default: one period of the trace)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the media model")
    add_sim_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _fmt(value: Any, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    from netlab.agent.checkpoints import load_policy
    from netlab.learning.sim import Controller, SimConfig, run_episode
    from netlab.scenario.model import Estimator
    from shaping.traces import load_trace

    trace = load_trace(args.trace)
    controller: Controller
    if args.policy:
        controller = load_policy(args.policy)
    elif args.gcc:
        controller = Estimator("gcc")
    else:
        controller = float(parsed(parse_rate, args.fixed, "--fixed"))
    duration = parsed(parse_duration, args.duration, "--duration") if args.duration else None
    step = parsed(parse_duration, args.step, "--step")
    try:
        config = SimConfig(step_s=step, duration_s=duration, link=base_shape(args))
    except ValueError as exc:
        raise NetlabError(str(exc), where="--step/--duration",
                          fix="a step of 10ms..10s and a positive duration") from None
    result = run_episode(controller, trace, config, seed=args.seed)
    if args.json:
        print(json.dumps(result.as_dict(), indent=1))
        return 0
    who = args.policy or ("gcc" if args.gcc else f"fixed {args.fixed}")
    table = Table(title=f"simulated call: {who} over {trace.name} "
                        f"({result.sim_s:.1f} s in {result.wall_s:.2f} s, {result.speed:.0f}×)")
    for column in ("receive rate", "delay p95", "loss", "network score", "mean reward",
                   "decisions"):
        table.add_column(column, justify="right")
    m, s = result.metrics, result.scores
    table.add_row(f"{_fmt(m.get('recv_rate_bps'), 1e-6, 3)} Mbit/s",
                  f"{_fmt(m.get('delay_p95_ms'))} ms", f"{_fmt(m.get('loss'), 100, 2)} %",
                  _fmt(s.get("network"), 1, 2), f"{result.mean_reward:.3f}",
                  f"{result.decisions}/{result.polls}" if args.policy else "-")
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    return 0
