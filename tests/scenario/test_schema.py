"""The editor schema comes from the validator's own definitions and agrees with it."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from yaml.nodes import ScalarNode

from netlab.cli.main import main
from netlab.scenario import definition
from netlab.scenario.fields import (
    INVALID,
    Context,
    Either,
    Entry,
    FieldType,
    ListOf,
    MapOf,
    Record,
    Tagged,
)
from netlab.scenario.problems import ProblemLog
from netlab.scenario.schema import scenario_json_schema

HERE = Path(__file__).parent
EXAMPLES = sorted((HERE.parents[1] / "scenarios").glob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(scenario_json_schema())

RICH = textwrap.dedent("""
    name: rich
    duration: 2min
    seed: 42
    subnet: 172.20.0.0/16
    hosts:
      alice: {sysctls: {net.ipv4.tcp_ecn: 1}}
      router:
      bob: {}
    links:
      - endpoints: [alice, router]
        rate: 20mbit
        delay: 5ms
        up: {jitter: 1ms, loss: 0.1%, queue: 64KiB}
      - name: last-mile
        endpoints: [router, bob]
        up: {trace: cellular/verizon-lte-short.up}
        down: {rate: 1.25MB/s, queue: 30pkt}
    flows:
      - {kind: rtc, from: alice, to: bob, estimator: "fixed:800kbit", initial_rate: 300kbit}
      - {kind: rtc, from: bob, to: alice, estimator: policy}
      - {kind: tcp, id: bulk, from: alice, to: bob, cc: bbr, start: 1s, stop: 100s}
      - {kind: probe, from: bob, to: alice, interval: 100ms, size: 64B}
    agents:
      alice: {checkpoint: models/p.pth, deadline: 500us, fallback: gcc}
""")


def test_schema_is_valid_draft_2020_12() -> None:
    schema = scenario_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_satisfy_the_schema(path: Path) -> None:
    VALIDATOR.validate(yaml.safe_load(path.read_text()))


def test_a_rich_scenario_satisfies_both() -> None:
    from netlab.scenario import load_scenario_text

    load_scenario_text(RICH, "rich.yaml")
    VALIDATOR.validate(yaml.safe_load(RICH))


@pytest.mark.parametrize(
    "stem",
    ["unknown-key", "unknown-top-key", "wrong-flow-keys", "bad-rate-unit", "missing-units",
     "bad-names", "wrong-types", "missing-required", "bad-flow-kind", "bad-queue",
     "yaml-booleans", "sysctl-problems", "rtc-probe-interval-value"],
)
def test_structural_mistakes_fail_the_schema_too(stem: str) -> None:
    document = yaml.safe_load((HERE / "bad" / f"{stem}.yaml").read_text())
    assert list(VALIDATOR.iter_errors(document)), stem


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == scenario_json_schema()


def _entries(field: FieldType) -> Iterator[tuple[str, Entry]]:
    if isinstance(field, Record):
        for key, entry in field.entries.items():
            yield key, entry
            yield from _entries(entry.type)
    elif isinstance(field, Tagged):
        for mapping in (field.common, *field.variants.values()):
            for key, entry in mapping.items():
                yield key, entry
                yield from _entries(entry.type)
    elif isinstance(field, ListOf):
        yield from _entries(field.item)
    elif isinstance(field, MapOf):
        yield from _entries(field.value)
    elif isinstance(field, Either):
        yield from _entries(field.as_list)
        yield from _entries(field.as_mapping)


def _parse_default(field: FieldType, text: str | int) -> Any:
    node = yaml.compose(str(text))
    assert isinstance(node, ScalarNode)
    log = ProblemLog("defaults")
    value = field.parse(node, "default", Context(log))
    assert not log, log.problems
    return value


def test_every_default_is_written_the_way_a_user_would_write_it() -> None:
    """``default`` (used by the validator) and ``default_text`` (shown in the schema) agree."""
    checked = 0
    # SHAPE_ENTRIES holds the defaults the validator merges into each link direction.
    for key, entry in [*_entries(definition.SCENARIO), *definition.SHAPE_ENTRIES.items()]:
        if entry.has_default:
            assert entry.default_text is not None, key
            assert _parse_default(entry.type, entry.default_text) == entry.default, key
            checked += 1
        elif entry.default_text is not None:  # documentation-only default (direction keys)
            assert _parse_default(entry.type, entry.default_text) is not INVALID
    assert checked >= 9
