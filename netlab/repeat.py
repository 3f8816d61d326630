"""``netlab run --repeat N``: the same scenario N times, and the spread of every metric.

How much of a result is the lab and how much the controller can only be
told by running it again: each flow's metrics and scores are gathered over
the runs and shown as mean, standard deviation, coefficient of variation
(CV = sd / |mean|), min and max, beside how many runs were faithful.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from netlab.errors import NetlabError


@dataclass(frozen=True)
class Spread:
    """One metric of one flow over the runs."""

    flow: str
    metric: str
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def cv(self) -> float | None:
        return self.sd / abs(self.mean) if self.mean else None

    def as_dict(self) -> dict[str, Any]:
        return {"flow": self.flow, "metric": self.metric, "n": len(self.values),
                "mean": self.mean, "sd": self.sd, "cv": self.cv,
                "min": min(self.values), "max": max(self.values)}


def _numbers(section: dict[str, Any], prefix: str) -> dict[str, float]:
    return {f"{prefix}{key}": float(value) for key, value in section.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(float(value))}


def spreads(results: list[dict[str, Any]]) -> list[Spread]:
    """Every numeric metric and score of every flow, over the runs that report it."""
    gathered: dict[tuple[str, str], list[float]] = {}
    for result in results:
        for flow in result.get("flows") or []:
            values = _numbers(flow.get("metrics") or {}, "")
            values.update(_numbers(flow.get("scores") or {}, "score "))
            for metric, value in values.items():
                gathered.setdefault((str(flow.get("id")), metric), []).append(value)
    return [Spread(flow, metric, tuple(values))
            for (flow, metric), values in gathered.items()]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def spread_table(rows: list[Spread], runs: int, faithful: int) -> Table:
    table = Table(title=f"spread over {runs} runs ({faithful} faithful)", title_justify="left")
    for column in ("flow", "metric", "mean", "sd", "CV", "min", "max"):
        table.add_column(column, justify="left" if column in ("flow", "metric") else "right")
    for row in rows:
        cv = row.cv
        table.add_row(row.flow, row.metric, _fmt(row.mean), _fmt(row.sd),
                      "-" if cv is None else f"{cv * 100:.1f} %", _fmt(min(row.values)),
                      _fmt(max(row.values)))
    return table


def summarize(run_dirs: list[Path], console: Console, out: Path | None = None
              ) -> list[Spread]:
    """Read each run's results.json, print the spread, write ``repeat.json`` to ``out``."""
    results = [json.loads((d / "results.json").read_text()) for d in run_dirs]
    rows = spreads(results)
    faithful = sum(1 for r in results if (r.get("fidelity") or {}).get("faithful"))
    console.print(spread_table(rows, len(results), faithful))
    if out is not None:
        out.write_text(json.dumps({"runs": [str(d) for d in run_dirs], "faithful": faithful,
                                   "spread": [row.as_dict() for row in rows]}, indent=1))
    return rows


def run_repeated(times: int, run_once: Callable[[], Path], console: Console) -> list[Path]:
    """Call ``run_once`` (one whole ``netlab run``) ``times`` times, then summarize.

    The spread is written beside the runs as ``<first run>.repeat.json``.
    """
    if times < 1:
        raise NetlabError(f"--repeat {times} asks for no run", where="--repeat",
                          fix="give --repeat N with N >= 1")
    run_dirs = []
    for index in range(times):
        console.print(f"[bold]run {index + 1} of {times}[/bold]")
        run_dirs.append(run_once())
    summarize(run_dirs, console, run_dirs[0].parent / f"{run_dirs[0].name}.repeat.json")
    return run_dirs
