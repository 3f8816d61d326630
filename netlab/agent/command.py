"""The agent process's command line: ``python -m netlab.agent --socket PATH
--checkpoint CKPT`` (also ``netlab agent serve``).

Exit: SIGTERM/SIGINT stop the loop, the socket file is removed and
``--stats-out`` (JSON) is written.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from labcore import units
from labcore.errors import LabError
from labcore.jsonfile import write_json_atomic
from labcore.priority import AGENT, freeze_start_up_heap, raise_priority
from netlab.agent.polling import DEFAULT_POLL_BUDGET, MAX_POLL_BUDGET
from netlab.agent.schedule import DEFAULT_WARM_INTERVAL_S, WARM_MODES
from netlab.errors import NetlabError

if TYPE_CHECKING:
    from netlab.agent.policies.base import Policy

DEVICES = ("cpu", "cuda")

# Durations in the one unit grammar; a bare number is seconds.
_duration = units.option(units.parse_duration, bare="s")


def open_policy(checkpoint: str | None, seed: int = 0) -> tuple[Policy, str]:
    from netlab.agent.checkpoints import load_policy
    from netlab.agent.policies.opennetlab import initial_checkpoint
    from netlab.agent.policies.spec import SpecPolicy

    if checkpoint:
        return load_policy(checkpoint), checkpoint
    return SpecPolicy(initial_checkpoint(seed)), f"initial policy (seed {seed})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", required=True, type=Path,
                        help="Unix SEQPACKET socket to serve on (created with mode 0600)")
    parser.add_argument("--checkpoint", default=None,
                        help="policy file (netlab format, OpenNetLab PPO state_dict, "
                             "TorchScript); default: a freshly initialised OpenNetLab-shaped "
                             "policy")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial policy")
    parser.add_argument("--deadline", type=_duration, default=0.001,
                        help="reply budget counted as a server-side miss (default 1ms)")
    parser.add_argument("--explore", action="store_true",
                        help="sample actions (policy std) instead of the deterministic mean")
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="where the forward pass runs (default cpu); cuda serves through "
                             "a captured CUDA graph per batch size (1, 8, 32) and falls back "
                             "to cpu, saying why, where there is no GPU")
    parser.add_argument("--warm-interval", type=_duration, default=DEFAULT_WARM_INTERVAL_S,
                        help="the model counts as cold after this much idle time (default "
                             "2ms; 0 disables warm-ups)")
    parser.add_argument("--warm", choices=WARM_MODES, default="predict",
                        help="predict (default): rehearse a flow's last request just before "
                             "its next expected one when the model has gone cold; periodic: "
                             "run the model whenever it has idled --warm-interval (costs CPU "
                             "all the time); off")
    parser.add_argument("--poll-budget", type=float, default=DEFAULT_POLL_BUDGET,
                        help="share of one core the agent may spend busy-polling around each "
                             f"flow's next expected request (default {DEFAULT_POLL_BUDGET}, at "
                             f"most {MAX_POLL_BUDGET}; 0: always sleep in epoll)")
    parser.add_argument("--trace", type=int, default=0,
                        help="keep the newest N decisions' (flow, seq, sent, read, replied) "
                             "CLOCK_MONOTONIC times in the stats (for benchmarks)")
    parser.add_argument("--transitions", type=int, default=65536,
                        help="transition buffer capacity in decisions (default 65536)")
    parser.add_argument("--control", type=Path, default=None,
                        help="Unix socket for the HTTP control API (health, stats, load, "
                             "drain)")
    parser.add_argument("--stats-out", type=Path, default=None,
                        help="write the final stats here as JSON on exit")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: one decision is tiny)")
    parser.add_argument("--priority", choices=("fifo", "nice", "none"), default="fifo",
                        help="scheduling of the serving thread (default fifo, one rung below "
                             "the user-space links and replayers): flows load the CPU while "
                             "it serves")


def run_agent(args: argparse.Namespace) -> int:
    import torch

    from netlab.agent.device import serve_on
    from netlab.agent.server import Agent

    torch.set_num_threads(max(1, args.threads))
    if not 0 <= args.poll_budget <= MAX_POLL_BUDGET:
        raise NetlabError(f"--poll-budget {args.poll_budget} is not a share of one core in "
                          f"[0, {MAX_POLL_BUDGET}]", where="command line",
                          fix=f"use 0 (never poll) to {MAX_POLL_BUDGET}")
    policy, source = open_policy(args.checkpoint, args.seed)
    policy, device = serve_on(policy, args.device)
    if device.get("note"):
        print(f"agent: {device['note']}", file=sys.stderr, flush=True)
    agent = Agent(policy, args.socket, deadline_s=args.deadline, explore=args.explore,
                  warm_interval_s=args.warm_interval or None, warm=args.warm,
                  poll_budget=args.poll_budget, trace=max(0, args.trace),
                  transition_capacity=args.transitions, source=source, device=device)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    control = None
    if args.control is not None:
        from netlab.agent.control import ControlServer  # aiohttp only when asked for
        control = ControlServer(agent, args.control)
        control.start()
    agent.open()
    # only the serving thread (this one) is raised, to the AGENT rung: one below the
    # user-space links and the replayers (shaping comes first); the control API stays
    # at normal priority
    held = raise_priority(args.priority, AGENT)
    print(f"agent: scheduling {held.policy}", file=sys.stderr, flush=True)
    print(f"agent: serving {policy.info.contract} ({policy.info.format}, {source}) on "
          f"{args.socket} ({device['used']})", file=sys.stderr, flush=True)
    freeze_start_up_heap()
    try:
        agent.serve()
    finally:
        if control is not None:
            control.stop()
        if args.stats_out is not None:
            args.stats_out.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.stats_out, agent.snapshot(), indent=1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netlab.agent",
                                     description="Serve a policy to this host's flows.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_agent(args)
    except LabError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
