"""``netlab schema``: print the scenario JSON Schema for editors (e.g. YAML language servers)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from netlab.scenario.schema import scenario_json_schema

NAME = "schema"
HELP = "Print the JSON Schema (draft 2020-12) of scenario files, for editors."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--indent", type=int, default=2, help="spaces per indentation level (default: 2)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        print(json.dumps(scenario_json_schema(), indent=args.indent, ensure_ascii=False))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `netlab schema | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
