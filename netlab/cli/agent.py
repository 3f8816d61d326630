"""``netlab agent inspect CKPT`` and ``netlab agent serve --socket PATH ...``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from netlab.errors import NetlabError

NAME = "agent"
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
    serve = sub.add_parser("serve", help="run an agent in the foreground",
                           description="Serve a policy on a Unix SEQPACKET socket "
                                       "(what the lab starts per host).")
    from netlab.agent.server import add_arguments
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
    if args.agent_command == "serve":
        from netlab.agent.server import run_agent
        return run_agent(args)
    raise NetlabError("no agent subcommand given", where="netlab agent",
                      fix="use `netlab agent inspect CKPT` or `netlab agent serve --socket P`")
