"""JSON Schema (draft 2020-12) for scenario files, for editors and linters.

Generated from the same field definitions the validator parses with
(:data:`netlab.scenario.definition.SCENARIO`), so it cannot disagree with
``netlab validate`` about which keys exist.  The validator stays the
authority on what the schema cannot say (cross references, unit ranges,
routability).
"""

from __future__ import annotations

from typing import Any

from netlab import __version__
from netlab.scenario.definition import SCENARIO

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def scenario_json_schema() -> dict[str, Any]:
    schema = SCENARIO.schema()
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://netlab.invalid/schema/scenario-{__version__}.json",
        "title": "netlab scenario",
        **schema,
        "description": (
            "A netlab scenario: hosts, shaped links, flows and agents. Units are explicit "
            "strings (10ms, 2.5Mbit, 0.5%, 100pkt, 64kB). 'netlab validate FILE' checks "
            "what a schema cannot (hosts that exist, unique names, routability)."
        ),
    }
