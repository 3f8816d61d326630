"""How much a run repeats: ``netlab run --repeat N`` of a fixed-rate and a GCC RTC call.

Issue #13's repeatability figures.  One corpus LTE trace (Verizon uplink,
Mahimahi), 25 ms one-way delay each way, a 60-packet queue, one RTC call for
``--seconds``; run N times each with

* ``estimator: fixed:RATE``: the sender holds one rate, so what varies from run
  to run is the lab (start alignment, link timing, scheduling).  Goal: CV of
  delay p95 <= 2 %, of the receive rate <= 0.5 %;
* ``estimator: gcc``: the spread of GCC itself on top of the lab's, reported
  as it is.

Prints, per scenario, the mean, CV, min and max of delay p95, receive rate
and (GCC) the network score over the runs (``netlab.repeat``'s spread), how
many runs were faithful, and whether the fixed-rate goal was met.  On a kernel
with netem the lab may still move the traced link to the user-space link (the
htb check; the choice is printed per run and kept in each results.json).

Run as root on an idle machine (about (seconds + 10) x runs x 2 s, ~6 min by default):
    .venv/bin/python bench/repeatability.py [--runs 5] [--seconds 25] [--json out.json]
Before this change, with the same interpreter on another checkout:
    .venv/bin/python bench/repeatability.py --repo /work/main --json before.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOALS = {"delay_p95_ms": 0.02, "recv_rate_bps": 0.005}  # fixed-rate CV goals
SHOWN = ("delay_p95_ms", "recv_rate_bps", "delay_p50_ms", "loss", "score network")

SCENARIO = """name: {name}
duration: {seconds}s
seed: 7
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    up: {{trace: cellular/verizon-lte-short.up, delay: 25ms, queue: 60pkt}}
    down: {{delay: 25ms}}
flows:
  - {{kind: rtc, from: alice, to: bob, estimator: "{estimator}"}}
"""


def repeat(name: str, estimator: str, runs: int, seconds: float, backend: str,
           work: Path, repo: Path) -> dict[str, Any]:
    scenario = work / f"{name}.yaml"
    scenario.write_text(SCENARIO.format(name=name, seconds=seconds, estimator=estimator))
    out = work / name
    argv = [sys.executable, "-m", "netlab.cli.main", "run", "-q", "--repeat", str(runs),
            "--out", str(out), str(scenario)]
    if backend != "auto":
        argv[4:4] = ["--backend", backend]
    # python -m from the checkout's root runs that checkout's netlab (--repo: before/after)
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=repo)
    if done.returncode:
        raise SystemExit(f"netlab run --repeat ({name}) failed:\n{done.stderr}")
    (spread_file,) = out.glob("*.repeat.json")
    spread: dict[str, Any] = json.loads(spread_file.read_text())
    first = json.loads((Path(spread["runs"][0]) / "results.json").read_text())
    spread["backend"] = first["backend"]
    spread["backend_choice"] = [c["reason"] for c in first.get("backend_choice", [])
                                if c["direction"] == "up"]
    return spread


def show(label: str, spread: dict[str, Any], goals: dict[str, float] | None) -> dict[str, bool]:
    rows = {row["metric"]: row for row in spread["spread"]}
    print(f"{label}: {len(spread['runs'])} runs, {spread['faithful']} faithful, "
          f"{spread['backend']} backend ({'; '.join(spread['backend_choice'])})")
    met: dict[str, bool] = {}
    for metric in SHOWN:
        row = rows.get(metric)
        if row is None:
            continue
        cv = row["cv"]
        verdict = ""
        if goals and metric in goals:
            met[metric] = cv is not None and cv <= goals[metric]
            verdict = (f"  goal CV <= {goals[metric] * 100:g} %: "
                       f"{'met' if met[metric] else 'MISSED'}")
        print(f"  {metric:>15}: mean {row['mean']:.4g}  CV "
              f"{'-' if cv is None else f'{cv * 100:.2f} %'}  min {row['min']:.4g}  "
              f"max {row['max']:.4g}{verdict}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--rate", default="1.5Mbit", help="the fixed-rate call's rate")
    parser.add_argument("--backend", default="auto", choices=("auto", "kernel", "user"))
    parser.add_argument("--json", type=Path, help="also write the spreads here")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the netlab checkout to run (default this one; another, such as "
                             "main before this change, gives the 'before' figures)")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nl-repeat-") as tmp:
        work = Path(tmp)
        for label, name, estimator, goals in (
                (f"fixed:{args.rate}", "repfixed", f"fixed:{args.rate}", GOALS),
                ("gcc", "repgcc", "gcc", None)):
            spread = repeat(name, estimator, args.runs, args.seconds, args.backend, work,
                            args.repo.resolve())
            report[label] = spread
            spread["goals_met"] = show(label, spread, goals)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
