"""``netlab validate FILE...``: check scenario files without creating anything.

Prints a short summary of each valid scenario (hosts, links with their
shapes, flows, agents); an invalid one raises :class:`ScenarioInvalid`, which
lists every problem, and the command exits 1.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from labcore.errors import LabError
from labcore.units import format_duration, format_percent, format_queue_limit, format_rate
from netlab.scenario import load_scenario
from netlab.scenario.model import Direction, Flow, Scenario

NAME = "validate"
HELP = "Check scenario files and summarise them; nothing is created."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="scenario YAML file")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems")


def run(args: argparse.Namespace) -> int:
    files: list[Path] = args.files
    if len(files) == 1:  # the dispatcher prints the error and exits 1
        scenario = load_scenario(files[0])
        if not args.quiet:
            print(summarise(scenario, str(files[0])))
        return 0
    failed = 0
    for path in files:
        try:
            scenario = load_scenario(path)
        except LabError as exc:
            print(exc.render(), file=sys.stderr)
            failed += 1
            continue
        if not args.quiet:
            print(summarise(scenario, str(path)))
    return 1 if failed else 0


def describe_direction(direction: Direction) -> str:
    shape = direction.shape
    parts: list[str] = []
    if direction.trace is not None:
        parts.append(f"trace {direction.trace}")
    if shape.rate_bps is not None:
        parts.append(f"rate {format_rate(shape.rate_bps)}")
    if shape.delay_s:
        parts.append(f"delay {format_duration(shape.delay_s)}")
    if shape.jitter_s:
        parts.append(f"jitter {format_duration(shape.jitter_s)}")
    if shape.loss:
        parts.append(f"loss {format_percent(shape.loss)}")
    if shape.queue is not None:
        parts.append(f"queue {format_queue_limit(shape.queue)}")
    return ", ".join(parts) or "unshaped"


def describe_flow(flow: Flow) -> str:
    stop = format_duration(flow.stop_s) if flow.stop_s is not None else "end"
    options = ", ".join(
        f"{key} {shlex.join(value) if isinstance(value, tuple) else value}"
        for key, value in flow.options.items())
    when = f"{format_duration(flow.start_s)}–{stop}"
    where = f"{flow.src}→{flow.dst}" if flow.src != flow.dst else f"in {flow.src}"
    text = f"{flow.id}  {flow.kind}  {where}  {when}"
    return f"{text}  {options}" if options else text


def summarise(scenario: Scenario, source: str) -> str:
    header = (
        f"{source}: valid scenario '{scenario.name}' "
        f"({format_duration(scenario.duration_s)}, seed {scenario.seed}"
        + (f", subnet {scenario.subnet}" if scenario.subnet else "")
        + ")"
    )
    lines = [header]
    hosts = []
    for host in scenario.hosts:
        sysctls = " ".join(f"{k}={v}" for k, v in host.sysctls.items())
        hosts.append(f"{host.name} ({sysctls})" if sysctls else host.name)
    lines.append(f"  hosts   {', '.join(hosts)}")
    name_width = max((len(link.name) for link in scenario.links), default=0)
    path_width = max((len(link.a) + len(link.b) + 1 for link in scenario.links), default=0)
    for index, link in enumerate(scenario.links):
        label = "  links   " if index == 0 else "          "
        for name, path, direction in (
            (link.name, f"{link.a}→{link.b}", link.up),
            ("", f"{link.b}→{link.a}", link.down),
        ):
            lines.append(
                f"{label}{name:<{name_width}}  {path:<{path_width}}  "
                f"{describe_direction(direction)}"
            )
            label = "          "
    if not scenario.links:
        lines.append("  links   none")
    for index, flow in enumerate(scenario.flows):
        label = "  flows   " if index == 0 else "          "
        lines.append(label + describe_flow(flow))
    for index, agent in enumerate(scenario.agents):
        label = "  agents  " if index == 0 else "          "
        checkpoint = agent.checkpoint or "initial policy"
        poll = f", polls {agent.poll_share:.0%} of a core" if agent.poll_share else ""
        lines.append(
            f"{label}{agent.host}  checkpoint {checkpoint}, deadline "
            f"{format_duration(agent.deadline_s)}, fallback {agent.fallback}{poll}"
        )
    return "\n".join(lines)
