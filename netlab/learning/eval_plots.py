"""The evaluation's figures: scores per scenario, and throughput against delay.

The second is Pantheon's view (Yan et al., USENIX ATC 2018, Figure 4): each
controller's 95th-percentile one-way delay (x, decreasing to the right)
against what it got through (y), so better is up and to the right, one
small point per scenario and a large one for the mean over scenarios. The
controllers no other beats on both axes (by their means) are joined: the
Pareto frontier. Throughput is utilisation (received over what the trace
offered) where every point has it, else the receive rate.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netlab.learning.evaluate import EvalReport


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend (labs run headless, as root)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_scores(report: EvalReport, path: Path) -> None:
    """Per-scenario mean network score with its 95 % interval, one bar per controller."""
    plt = _pyplot()
    n = len(report.scenarios)
    width = 0.8 / max(1, len(report.controllers))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * n + 2), 4))
    for k, name in enumerate(report.controllers):
        means, errs = [], []
        for i in range(n):
            interval = report.scenario(name, i)
            means.append(0.0 if math.isnan(interval.mean) else interval.mean)
            errs.append(0.0 if math.isnan(interval.half_width) else interval.half_width)
        xs = [i + (k - (len(report.controllers) - 1) / 2) * width for i in range(n)]
        ax.bar(xs, means, width, yerr=errs, capsize=2,
               label=f"{name} ({report.aggregate(name)})")
    ax.set_xticks(range(n))
    ax.set_xticklabels([s.name[:18] for s in report.scenarios], rotation=30, ha="right",
                       fontsize=7)
    ax.set_ylabel("OpenNetLab network score (95 % CI)")
    ax.set_ylim(0, 72)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names whose (delay, throughput) no other point beats on both (lower
    delay and higher throughput, one strictly), ordered by delay."""
    front = [a for a, (da, ta) in points.items()
             if not any((db <= da and tb >= ta) and (db < da or tb > ta)
                        for b, (db, tb) in points.items() if b != a)]
    return sorted(front, key=lambda name: points[name][0])


def plot_pareto(report: EvalReport, path: Path) -> None:
    plt = _pyplot()
    from matplotlib import ticker
    every = [(name, i) for name in report.controllers for i in range(len(report.scenarios))
             if report.values(name, i, "delay_p95_ms")]
    use_util = bool(every) and all(report.values(n, i, "utilization") for n, i in every)
    metric, scale = ("utilization", 1.0) if use_util else ("recv_rate_bps", 1e-6)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    means: dict[str, tuple[float, float]] = {}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, name in enumerate(report.controllers):
        colour = colours[k % len(colours)]
        xs, ys = [], []
        for i in range(len(report.scenarios)):
            x, y = report.mean(name, i, "delay_p95_ms"), report.mean(name, i, metric)
            if not (math.isnan(x) or math.isnan(y)):
                xs.append(x)
                ys.append(y * scale)
        if not xs:
            continue
        ax.scatter(xs, ys, s=14, alpha=0.45, color=colour)
        means[name] = (sum(xs) / len(xs), sum(ys) / len(ys))
        ax.scatter(*means[name], s=110, color=colour, edgecolor="black", zorder=3, label=name)
        ax.annotate(name, means[name], textcoords="offset points", xytext=(6, 6), fontsize=8)
    front = pareto_front(means)
    if len(front) > 1:
        ax.plot([means[n][0] for n in front], [means[n][1] for n in front], "--",
                color="grey", linewidth=1, label="Pareto frontier (means)")
    ax.set_xscale("log")
    ax.invert_xaxis()
    plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    if use_util:
        top = max((y for _, y in means.values()), default=1.0)
        ax.set_ylim(0.0, max(1.05, top * 1.1))
    ax.set_xlabel("95th-percentile one-way delay (ms, log scale; better →)")
    ax.set_ylabel("utilisation (received / trace capacity)" if use_util
                  else "receive rate (Mbit/s)")
    ax.set_title(f"throughput vs delay over {len(report.scenarios)} scenario(s)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if means:
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
