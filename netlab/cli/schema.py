"""``netlab schema``: print the scenario JSON Schema for editors (e.g. YAML language servers)."""

from __future__ import annotations

import argparse
import json

from netlab.scenario.schema import scenario_json_schema

NAME = "schema"
HELP = "print the JSON Schema (draft 2020-12) of scenario files"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--indent", type=int, default=2, help="spaces per indentation level (default: 2)"
    )


def run(args: argparse.Namespace) -> int:
    print(json.dumps(scenario_json_schema(), indent=args.indent, ensure_ascii=False))
    return 0
