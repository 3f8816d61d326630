"""Arguments shared by the commands that bring a lab up."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from netlab.errors import NetlabError


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="scenario YAML file")
    parser.add_argument("--backend", choices=("auto", "kernel", "user"), default="auto",
                        help="link shaping backend (auto: kernel tc when it can do "
                             "everything asked, else the user-space link)")
    parser.add_argument("--subnet", help="private IPv4 range for the lab's addresses")
    parser.add_argument("--out", type=Path, default=Path("runs"),
                        help="where run directories with results are written (default: ./runs)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no live view, summary only")


def parse_subnet(text: str | None) -> ipaddress.IPv4Network | None:
    if text is None:
        return None
    try:
        return ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise NetlabError(f"--subnet {text!r} is not an IPv4 network: {exc}",
                          where="--subnet", fix="give a network such as 10.77.0.0/16") from None


def backend_arg(value: str) -> str | None:
    return None if value == "auto" else value
