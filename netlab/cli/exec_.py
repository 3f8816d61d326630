"""``netlab exec LAB HOST -- CMD``: run a command inside a host's namespace."""

from __future__ import annotations

import argparse
import os

from netlab.errors import NetlabError
from netlab.lab import netns, state

NAME = "exec"
HELP = "Run a command inside a lab host's network namespace."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab")
    parser.add_argument("host")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="command (after --)")


def run(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise NetlabError("no command given", where="netlab exec",
                          fix=f"netlab exec {args.lab} {args.host} -- ip addr")
    lab = state.load(args.lab)
    if lab is None:
        raise NetlabError(f"no lab named '{args.lab}' is up", where="netlab exec",
                          fix="'netlab status' lists the labs that are up")
    host = lab.hosts.get(args.host)
    if host is None or not netns.exists(host["namespace"]):
        raise NetlabError(f"lab '{args.lab}' has no host '{args.host}'", where="netlab exec",
                          fix=f"hosts: {', '.join(lab.hosts) or 'none'}")
    netns.enter(host["namespace"])
    try:
        os.execvp(cmd[0], cmd)
    except FileNotFoundError:
        raise NetlabError(f"command not found: {cmd[0]}", where=f"host {args.host}",
                          fix="check the command name and PATH") from None
