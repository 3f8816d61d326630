"""An RTC flow's ``probe_interval`` reaches the sender as ``--probe-interval <seconds>``.

The bad cases (non-gcc estimators, ill-formed values) are goldens under
``bad/rtc-probe-interval-*``; this file checks the good path end to end:
scenario text → typed flow → sender argv → the sender's own parser.
"""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from endpoints.rtc import sender_app
from endpoints.rtc.gcc.probe_controller import DEFAULT_PERIODIC_PROBE_INTERVAL_MS
from labcore import units
from netlab.lab.plan import plan_lab
from netlab.run.flows import flow_commands
from netlab.run.kinds import rtc as rtc_kind
from netlab.scenario import load_scenario_text
from netlab.scenario.model import Scenario
from netlab.scenario.schema import scenario_json_schema

SUBNET = ipaddress.IPv4Network("10.77.0.0/16")


def _scenario(flow_keys: str) -> Scenario:
    return load_scenario_text(textwrap.dedent(f"""
        name: probes
        duration: 10s
        hosts: [alice, bob]
        links:
          - endpoints: [alice, bob]
        flows:
          - {{kind: rtc, from: alice, to: bob{flow_keys}}}
          - {{kind: tcp, from: bob, to: alice}}
    """), "probes.yaml")


def _sender_argv(scenario: Scenario, directory: Path) -> list[str]:
    _, sender = flow_commands(scenario.flows[0], 0, plan_lab(scenario, SUBNET), scenario,
                              directory)
    return sender


def _flag(argv: list[str], flag: str) -> list[str]:
    """Every value given for ``flag`` in ``argv``."""
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("500ms", 0.5), ("0s", 0.0), ("2s", 2.0), ("1.5s", 1.5), ("750000us", 0.75)],
)
def test_probe_interval_reaches_the_sender(written: str, seconds: float, tmp_path: Path) -> None:
    scenario = _scenario(f", estimator: gcc, probe_interval: {written}")
    flow = scenario.flows[0]
    assert flow.options["probe_interval"] == seconds
    assert flow.probe_interval_s == seconds
    argv = _sender_argv(scenario, tmp_path)
    assert _flag(argv, "--probe-interval") == [str(seconds)]
    # The sender itself accepts what the runner passes and keeps the value.
    module = argv.index("endpoints.rtc.sender_app")
    parser = sender_app.build_parser()
    args = parser.parse_args(argv[module + 1:])
    assert sender_app.config_from_args(args, parser).probe_interval_s == seconds


def test_500ms_is_passed_as_half_a_second(tmp_path: Path) -> None:
    argv = _sender_argv(_scenario(", probe_interval: 500ms"), tmp_path)  # estimator gcc by default
    at = argv.index("--probe-interval")
    assert argv[at:at + 2] == ["--probe-interval", "0.5"]
    assert _flag(argv, "--estimator") == ["gcc"]


def test_absent_probe_interval_leaves_the_senders_default(tmp_path: Path) -> None:
    scenario = _scenario(", estimator: gcc")
    assert "probe_interval" not in scenario.flows[0].options
    assert scenario.flows[0].probe_interval_s is None
    assert "--probe-interval" not in _sender_argv(scenario, tmp_path)
    tcp = scenario.flows[1]
    assert tcp.probe_interval_s is None


def test_schema_documents_the_senders_own_default() -> None:
    """The schema's default is the sender's, as the scenario would write it."""
    default_s = units.parse_duration(rtc_kind.SENDER_PROBE_INTERVAL_TEXT)
    assert default_s == DEFAULT_PERIODIC_PROBE_INTERVAL_MS / 1000
    assert sender_app.build_parser().get_default("probe_interval") == default_s
    rtc = next(branch["then"] for branch in scenario_json_schema()["properties"]["flows"]
               ["anyOf"][0]["items"]["allOf"]
               if branch["if"]["properties"]["kind"]["const"] == "rtc")
    entry = rtc["properties"]["probe_interval"]
    assert entry["default"] == rtc_kind.SENDER_PROBE_INTERVAL_TEXT
    assert "gcc" in entry["description"]
    assert entry["pattern"] == units.DURATION_PATTERN
