"""``netlab agent inspect CKPT``, ``netlab agent init --contract C --out CKPT`` and
``netlab agent serve --socket PATH ...``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from netlab.errors import NetlabError

NAME = "agent"
INITIAL_CONTRACTS = ("rtc-hist", "rtc-onl4", "tcp-mi5")
HELP = "Inspect policy checkpoints and serve them to flows (the per-host agent)."


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="agent_command", metavar="SUBCOMMAND")
    inspect = sub.add_parser(
        "inspect", help="say what a checkpoint is and what it expects",
        description="Load a checkpoint safely (weights_only; TorchScript via torch.jit.load) "
                    "and print its format, contract, observation, action and size. Formats: "
                    "netlab (own dict: format, model spec, normalisation, state_dict), "
                    "OpenNetLab PPO state_dict, TorchScript modules.")
    inspect.add_argument("checkpoint", type=Path, metavar="CKPT")
    inspect.add_argument("--json", action="store_true", help="print as JSON")
    init = sub.add_parser(
        "init", help="write a freshly initialised policy for a contract",
        description="Write a new checkpoint in the netlab format for CONTRACT: rtc-onl4 "
                    "(OpenNetLab's PPO shape, for policy RTC receivers), rtc-hist (the last "
                    "10 OpenNetLab states in, a factor on the estimate out) or tcp-mi5 "
                    "(Aurora's MLP with tanh output, for policy TCP senders). The start of "
                    "training.")
    init.add_argument("--contract", required=True, choices=sorted(INITIAL_CONTRACTS),
                      help="what the flows that use it declare")
    init.add_argument("--out", required=True, type=Path, metavar="CKPT",
                      help="where to write it (.pth)")
    init.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    serve = sub.add_parser("serve", help="run an agent in the foreground",
                           description="Serve a policy on a Unix SEQPACKET socket "
                                       "(what the lab starts per host).")
    from netlab.agent.command import add_arguments
    add_arguments(serve)


def run(args: argparse.Namespace) -> int:
    if args.agent_command == "inspect":
        from netlab.agent.checkpoints import describe, load_policy
        policy = load_policy(args.checkpoint)
        if args.json:
            info = policy.info
            print(json.dumps({"checkpoint": str(args.checkpoint), **info.__dict__}, indent=1,
                             default=str))
        else:
            print("\n".join(describe(policy, args.checkpoint)))
        return 0
    if args.agent_command == "init":
        return _init(args.contract, args.out, args.seed, args.force)
    if args.agent_command == "serve":
        from netlab.agent.command import run_agent
        return run_agent(args)
    raise NetlabError("no agent subcommand given", where="netlab agent",
                      fix="use `netlab agent inspect CKPT`, `netlab agent init --contract C "
                          "--out CKPT` or `netlab agent serve --socket P`")


def _init(contract: str, out: Path, seed: int, force: bool) -> int:
    import torch

    from netlab.agent.checkpoints import describe, load_policy
    from netlab.agent.policies import opennetlab, rtc_history, tcp_mi5

    if out.exists() and not force:
        raise NetlabError("the checkpoint file exists already", where=f"--out {out}",
                          fix="choose another path or add --force to overwrite it")
    if not out.parent.is_dir():
        raise NetlabError("the output directory does not exist", where=f"--out {out}",
                          fix=f"create it first: mkdir -p {out.parent}")
    make = {"rtc-onl4": opennetlab.initial_checkpoint,
            "rtc-hist": rtc_history.initial_checkpoint,
            "tcp-mi5": tcp_mi5.initial_checkpoint}[contract]
    tmp = out.with_name(out.name + ".tmp")
    torch.save(make(seed), tmp)
    tmp.replace(out)
    print("\n".join(describe(load_policy(out), out)))  # what a server will see
    return 0
