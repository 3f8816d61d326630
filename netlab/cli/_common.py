"""Arguments shared by the commands that bring a lab up."""

from __future__ import annotations

import argparse
import ipaddress
import re
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
    parser.add_argument("--no-plots", dest="plots", action="store_false",
                        help="write no PNG plots (batches of runs; 'netlab report --plots "
                             "RUN_DIR' draws them later)")


def parse_subnet(text: str | None) -> ipaddress.IPv4Network | None:
    """``--subnet`` passes the scenario's ``subnet:`` rules (private, /24 or
    larger); preflight then checks it against the machine and other labs."""
    from netlab.scenario.definition import SUBNET_EXPECTED, _subnet
    from netlab.scenario.fields import ValueProblem

    if text is None:
        return None
    try:
        return _subnet(text)
    except ValueProblem as exc:
        raise NetlabError(f"--subnet {text!r} is not {SUBNET_EXPECTED}"
                          + (f": {exc.hint}" if exc.hint else ""),
                          where="--subnet", fix="give a free private range such as 10.77.0.0/16, "
                          "or leave --subnet out to let netlab choose one") from None


def lab_name_arg(name: str, command: str) -> str:
    """A lab name from the command line, checked before it becomes a path
    under the run root (``netlab down ../x`` must not reach outside it)."""
    from netlab.scenario.values import _NAME, MAX_LAB_NAME

    if len(name) > MAX_LAB_NAME or not re.fullmatch(_NAME, name):
        raise NetlabError(f"{name!r} is not a lab name", where=f"netlab {command} NAME",
                          fix="give a name as 'netlab status' lists it")
    return name


def backend_arg(value: str) -> str | None:
    return None if value == "auto" else value
