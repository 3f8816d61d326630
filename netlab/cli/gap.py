"""``netlab gap --policy NAME=CKPT --baseline gcc --fixed 1Mbit --scenarios FILE...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from labcore import units
from netlab.cli._common import backend_arg
from netlab.errors import NetlabError

if TYPE_CHECKING:
    from netlab.learning.gap import Controller
    from netlab.scenario.model import Scenario

NAME = "gap"
HELP = ("Run each scenario in a lab and in the simulator under each controller (policies, "
        "GCC, fixed rates); report every metric from both with 95 % intervals, and whether "
        "the two rank the controllers alike.")

_SHOW = {"recv_rate_bps": ("receive rate (Mbit/s)", 1e-6, 3),
         "delay_p95_ms": ("delay p95 (ms)", 1.0, 1),
         "loss": ("loss (%)", 100.0, 2),
         "frame_delay_p95_ms": ("frame delay p95 (ms)", 1.0, 1),
         "freezes": ("freezes", 1.0, 2),
         "network_score": ("network score", 1.0, 2)}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", action="append", default=[], metavar="[NAME=]CKPT",
                        help="a policy checkpoint as a controller; repeat for several")
    parser.add_argument("--baseline", action="append", default=[], choices=("gcc",),
                        help="a rule-based controller (gcc: the sender's GCC)")
    parser.add_argument("--fixed", action="append", default=[], metavar="RATE",
                        help="a fixed estimate as a controller, e.g. 1Mbit; repeat for several")
    parser.add_argument("--scenarios", type=Path, nargs="+", required=True,
                        help="scenario files (the flow under test: the rtc flow with estimator "
                             "policy, or the only rtc flow), or scenario-set YAMLs (space/count, "
                             "traces or envs; a finetune config's held_out)")
    parser.add_argument("--set", default="held_out",
                        help="which set of a finetune config (default held_out)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="emulated runs per scenario and controller (default 1)")
    parser.add_argument("--deadline", type=units.option(units.parse_duration, bare="ms"),
                        default=0.020, help="agent reply budget where gap adds the agent "
                        "(default 20ms)")
    parser.add_argument("--backend", choices=("auto", "kernel", "user"), default="auto",
                        help="shaping backend of the emulated runs")
    parser.add_argument("--out", type=Path, default=Path("runs/gap"),
                        help="output directory: gap.json and the emulated runs")
    parser.add_argument("--keep-unfaithful", action="store_true",
                        help="keep emulated runs whose fidelity report failed "
                             "(default: left out and counted per controller)")


def controllers(args: argparse.Namespace) -> list[Controller]:
    from netlab.learning.gap import Controller
    from netlab.scenario.model import Estimator

    out: list[Controller] = []
    for i, value in enumerate(args.policy):
        name, sep, path = value.partition("=")
        if not sep:
            name, path = ("policy" if len(args.policy) == 1 else f"policy{i + 1}"), value
        checkpoint = Path(path)
        if not checkpoint.is_file():
            raise NetlabError(f"checkpoint {checkpoint} does not exist", where="--policy",
                              fix="give a checkpoint the agent loads (models/*.pth)")
        out.append(Controller(name, Estimator("policy"), checkpoint))
    for name in args.baseline:  # argparse allows gcc only
        out.append(Controller(name, Estimator("gcc")))
    for text in args.fixed:
        try:
            bps = units.parse_rate(text, bare="bit")
        except units.UnitError as exc:
            raise NetlabError(f"--fixed {text}: {exc.what}", where="--fixed",
                              fix="a rate with its unit, e.g. 1Mbit") from None
        out.append(Controller(f"fixed-{units.format_rate(bps)}", Estimator("fixed",
                                                                           rate_bps=bps)))
    names = [c.name for c in out]
    if len(out) < 1 or len(set(names)) != len(names):
        raise NetlabError("give controllers with distinct names", where="--policy/--baseline/"
                          "--fixed", fix="e.g. --policy onl=models/opennetlab-pretrained.pth "
                          "--baseline gcc --fixed 1Mbit")
    return out


def load_scenarios(paths: list[Path], which: str, out: Path) -> list[Scenario]:
    """Plain scenario files as written; scenario sets as the scenarios eval would run
    (written under ``out/scenarios``)."""
    from netlab.learning.scenario_set import load_set, scenario_for
    from netlab.scenario import load_scenario
    from netlab.scenario.loader import load_yaml_file

    scenarios: list[Scenario] = []
    for path in paths:
        data: Any = load_yaml_file(path, "scenario or scenario set", "give a YAML file")
        if not isinstance(data, dict):
            raise NetlabError("a scenario or a scenario set is a mapping", where=str(path),
                              fix="see docs/finetune.md, 'Scenario sets'")
        if "flows" in data or "hosts" in data:
            scenarios.append(load_scenario(path))
            continue
        if which in data and isinstance(data[which], dict):
            data = data[which]  # a finetune config's set
        for i, env in enumerate(load_set(data, path.parent, str(path))):
            directory = out / "scenarios" / f"{path.stem}-{i:03d}"
            scenarios.append(scenario_for(env, directory, lab=f"gap{i:03d}", estimator="gcc"))
    return scenarios


def _cell(value: float | None, scale: float, digits: int, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * scale:{'+' if signed else ''}.{digits}f}"


def _interval(data: dict[str, Any], scale: float, digits: int, signed: bool = False) -> str:
    mean, half = data.get("mean"), data.get("ci95")
    text = _cell(mean, scale, digits, signed)
    return text if half is None or mean is None else f"{text} ± {half * scale:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    from netlab.learning.gap import gap
    from netlab.learning.gap_report import build_report
    from netlab.run.session import run_session

    console = Console(stderr=True)
    chosen = controllers(args)
    if args.repeat < 1:
        raise NetlabError(f"--repeat {args.repeat}", where="--repeat", fix="1 or more")
    args.out.mkdir(parents=True, exist_ok=True)
    scenarios = load_scenarios(args.scenarios, args.set, args.out)

    def emulate(scenario: Scenario) -> Path:
        return run_session(scenario, backend=backend_arg(args.backend), subnet=None,
                           out_base=args.out / "runs", quiet=True, keep_up=False)

    entries = gap(chosen, scenarios, emulate, repeat=args.repeat, deadline_s=args.deadline,
                  report=console.print)
    report = build_report(entries, keep_unfaithful=args.keep_unfaithful)
    summary = report.as_dict()
    path = args.out / "gap.json"
    path.write_text(json.dumps({**summary, "entries": entries}, indent=1))
    width = None if sys.stdout.isatty() else 140
    table = Table(title=f"sim vs emulation over {len(report.scenarios)} scenarios "
                        "(mean ± 95 % t interval over scenarios)")
    for column in ("controller", "metric", "sim", "emulation", "emu − sim"):
        table.add_column(column, justify="left" if column in ("controller", "metric")
                         else "right")
    for name in report.controllers:
        first = f"{name} ({report.unfaithful[name]} unfaithful)"
        for key, (label, scale, digits) in _SHOW.items():
            row = summary["per_controller"][name][key]
            table.add_row(first, label, _interval(row["sim"], scale, digits),
                          _interval(row["emulation"], scale, digits),
                          _interval(row["difference"], scale, digits, signed=True))
            first = ""
    Console(width=width).print(table)
    ranks = Table(title="do sim and emulation rank the controllers alike?")
    for column in ("metric", "Kendall tau", "same order", "sim order", "emulation order"):
        ranks.add_column(column)
    for key, (label, _, _) in _SHOW.items():
        r = summary["ranking"][key]
        ranks.add_row(label, _cell(r.get("tau"), 1.0, 2, signed=True),
                      {True: "yes", False: "no", None: "-"}[r.get("same_order")],
                      " > ".join(r.get("sim_order", [])), " > ".join(r.get("emulation_order", [])))
    Console(width=width).print(ranks)
    print(summary["verdict"])
    console.print(f"written {path}")
    return 0
