"""Reading finished runs back: per-run tables, a cross-run comparison and a
Pantheon-style throughput vs delay plot.

Everything here reads ``results.json`` only (never the lab), so a report can
be made long after the run, on another machine. The comparison plot follows
Pantheon's summary plot (Yan et al., "Pantheon: the training ground for
Internet congestion-control research", USENIX ATC 2018): x is the 95th
percentile one-way delay on a log scale, inverted so that lower delay is to
the right; y is the average throughput; better is up and to the right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from netlab.run.plots import controller, format_ms, load_results, route

COMPARISON_FILE = "comparison.png"
COMPARISON_SIZE_IN = (10.0, 6.0)
COMPARISON_DPI = 120
KIND_MARKERS = {"rtc": "o", "tcp": "s", "probe": "^"}
OTHER_MARKER = "D"
# Okabe-Ito first, then more distinct colours for long comparisons.
RUN_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
               "#F0E442", "#882255", "#44AA99")

#: Kind-specific metric columns: (metrics key, header, formatter); a column
#: is shown only when some flow of the table has the key.
EXTRA_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("frame_delay_p95_ms", "frame delay p95 ms", "ms"),
    ("freezes", "freezes", "int"),
    ("rtt_p50_ms", "RTT p50 ms", "ms"),
    ("rtt_p95_ms", "RTT p95 ms", "ms"),
    ("retransmits", "retrans", "int"),
)


@dataclass(frozen=True)
class Run:
    """One run directory's results, with a label unique within the report."""

    path: Path
    label: str
    results: dict[str, Any]

    @property
    def scenario_name(self) -> str:
        return str((self.results.get("scenario") or {}).get("name", "?"))

    @property
    def flows(self) -> list[dict[str, Any]]:
        flows: list[dict[str, Any]] = self.results["flows"]
        return flows

    @property
    def fidelity(self) -> dict[str, Any]:
        fidelity = self.results.get("fidelity")
        return fidelity if isinstance(fidelity, dict) else {}


@dataclass(frozen=True)
class ComparisonPoint:
    """One run × flow on the throughput/delay plane."""

    run: str
    flow: str
    kind: str
    controller: str
    throughput_bps: float
    delay_p95_ms: float
    #: "one-way": the flow's delay_p95_ms; "rtt/2": half the TCP smoothed RTT
    #: p95, the best stand-in a TCP flow without packet capture has.
    delay_source: str


def load_runs(paths: Sequence[Path]) -> list[Run]:
    """Each run directory once, in the order given, with unique short labels."""
    unique: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        resolved = Path(path).resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(Path(path))
    loaded = [(path, load_results(path)) for path in unique]
    labels = _labels([path for path, _ in loaded])
    return [Run(path, label, results) for (path, results), label in zip(loaded, labels,
                                                                         strict=True)]


def _labels(paths: list[Path]) -> list[str]:
    """The directory name, or parent/name where names repeat, or numbered."""
    names = [path.resolve().name for path in paths]
    if len(set(names)) == len(names):
        return names
    names = ["/".join(path.resolve().parts[-2:]) for path in paths]
    if len(set(names)) == len(names):
        return names
    return [f"#{i + 1} {name}" for i, name in enumerate(names)]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _fmt_rate(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "-"
    return f"{number / 1e6:.3f}" if number < 1e5 else f"{number / 1e6:.2f}"


def _fmt(value: Any, style: str) -> str:
    number = _number(value)
    if number is None:
        return "-"
    if style == "ms":
        return format_ms(number)
    if style == "pct":
        return f"{number * 100:.2f}"
    if style == "int":
        return f"{number:.0f}"
    return f"{number:.1f}"


def _score(flow: dict[str, Any]) -> Any:
    scores = flow.get("scores")
    return scores.get("network") if isinstance(scores, dict) else None


def _metrics(flow: dict[str, Any]) -> dict[str, Any]:
    metrics = flow.get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def flows_table(run: Run) -> Table:
    """The run's flows with the contract metrics, kind extras and scores."""
    scenario = run.results.get("scenario") or {}
    duration = _number(scenario.get("duration_s"))
    title = (f"{run.label}: scenario {run.scenario_name}"
             + (f", {duration:g} s" if duration is not None else "")
             + f", {run.results.get('backend', '?')} shaping")
    table = Table(title=title, title_justify="left")
    table.add_column("flow", no_wrap=True)
    table.add_column("kind")
    table.add_column("cc / estimator")
    table.add_column("from → to", no_wrap=True)
    numeric = [("recv_rate_bps", "rate Mbit/s", "rate"), ("delay_p50_ms", "delay p50 ms", "ms"),
               ("delay_p95_ms", "delay p95 ms", "ms"), ("delay_p99_ms", "delay p99 ms", "ms"),
               ("loss", "loss %", "pct")]
    numeric += [column for column in EXTRA_COLUMNS
                if any(_number(_metrics(flow).get(column[0])) is not None for flow in run.flows)]
    for _, header, _ in numeric:
        table.add_column(header, justify="right")
    show_score = any(_number(_score(flow)) is not None for flow in run.flows)
    if show_score:
        table.add_column("network score", justify="right")
    for flow in run.flows:
        metrics = _metrics(flow)
        cells = [flow["id"], str(flow.get("kind", "?")), controller(flow), route(flow)]
        cells += [_fmt_rate(metrics.get(key)) if style == "rate" else _fmt(metrics.get(key), style)
                  for key, _, style in numeric]
        if show_score:
            cells.append(_fmt(_score(flow), "score"))
        table.add_row(*cells)
    if not run.flows:
        table.caption = "this run has no flows"
    return table


def fidelity_summary(run: Run) -> Group:
    """The verdict first (faithful or not, in words), then per-direction figures."""
    fidelity = run.fidelity
    parts: list[Any] = []
    if "faithful" not in fidelity:
        parts.append(Text("fidelity: not recorded in this run", style="yellow"))
        return Group(*parts)
    faithful = bool(fidelity["faithful"])
    parts.append(Text("fidelity: faithful" if faithful else "fidelity: NOT faithful",
                      style="bold green" if faithful else "bold red"))
    for verdict in fidelity.get("verdicts") or []:
        parts.append(Text(f"  {verdict}", style="green" if faithful else "red"))
    links = [link for link in fidelity.get("links") or [] if isinstance(link, dict)]
    if links:
        table = Table(title="link fidelity", title_justify="left")
        for column in ("link", "dir", "evidence", "capacity err %", "delay err p99 ms",
                       "timing err p99 ms", "loss asked/seen %"):
            table.add_column(column, justify="left" if column in ("link", "dir", "evidence")
                             else "right")
        for link in links:
            delay_err = link.get("delay_err_ms") or {}
            timing = link.get("timing_err_ms") or {}
            loss = ("-" if link.get("loss_asked") is None and link.get("loss_seen") is None else
                    f"{_fmt(link.get('loss_asked'), 'pct')}/{_fmt(link.get('loss_seen'), 'pct')}")
            table.add_row(str(link.get("link", "?")), str(link.get("direction", "?")),
                          str(link.get("source", "-")), _fmt(link.get("capacity_mape"), "pct"),
                          _fmt(delay_err.get("p99"), "ms"), _fmt(timing.get("p99"), "ms"), loss)
        parts.append(table)
    return Group(*parts)


def agents_table(run: Run) -> Table | None:
    agents = [agent for agent in run.results.get("agents") or [] if isinstance(agent, dict)]
    if not agents:
        return None
    table = Table(title="agents", title_justify="left")
    for column in ("host", "decisions", "late (fallback)", "fallback s", "latency p50 µs",
                   "p99 µs", "p99.9 µs"):
        table.add_column(column, justify="left" if column == "host" else "right")
    for agent in agents:
        latency = agent.get("latency_us") or {}
        table.add_row(str(agent.get("host", "?")), _fmt(agent.get("decisions"), "int"),
                      _fmt(agent.get("misses"), "int"), _fmt(agent.get("fallback_s"), "ms"),
                      _fmt(latency.get("p50"), "score"), _fmt(latency.get("p99"), "score"),
                      _fmt(latency.get("p999"), "score"))
    return table


def traffic_table(run: Run) -> Table | None:
    """The captured traffic (``traffic[]``): one row per link direction and
    5-tuple, with its delivered packets, rate, exact one-way delay and loss."""
    rows = [row for row in run.results.get("traffic") or [] if isinstance(row, dict)]
    if not rows:
        return None
    table = Table(title="captured traffic", title_justify="left")
    for column in ("link", "dir", "proto", "source → destination", "packets", "rate Mbit/s",
                   "delay p50 ms", "p95 ms", "p99 ms", "loss %"):
        table.add_column(column, justify="right" if column in (
            "packets", "rate Mbit/s", "delay p50 ms", "p95 ms", "p99 ms", "loss %") else "left",
            no_wrap=column == "source → destination")
    for row in rows:
        ends = (f"{row.get('src', '?')}:{row.get('sport', '?')} → "
                f"{row.get('dst', '?')}:{row.get('dport', '?')}")
        table.add_row(str(row.get("link", "?")), str(row.get("direction", "?")),
                      str(row.get("proto", "?")), ends, _fmt(row.get("packets"), "int"),
                      _fmt_rate(row.get("recv_rate_bps")), _fmt(row.get("delay_p50_ms"), "ms"),
                      _fmt(row.get("delay_p95_ms"), "ms"), _fmt(row.get("delay_p99_ms"), "ms"),
                      _fmt(row.get("loss"), "pct"))
    return table


def comparison_table(runs: Sequence[Run]) -> Table:
    """Flows matched by (id, kind) across runs; Δ relative to the first run that has it."""
    table = Table(title="comparison (Δ vs the first run with the flow)", title_justify="left")
    for column in ("flow", "kind", "run", "cc / estimator", "rate Mbit/s", "Δ rate",
                   "delay p95 ms", "Δ delay p95", "loss %", "network score"):
        table.add_column(column, justify="right" if column.startswith(("rate", "Δ", "delay",
                                                                         "loss", "network"))
                         else "left", no_wrap=column in ("flow", "run"))
    groups: dict[tuple[str, str], list[tuple[Run, dict[str, Any]]]] = {}
    for run in runs:
        for flow in run.flows:
            groups.setdefault((flow["id"], str(flow.get("kind", "?"))), []).append((run, flow))
    for (flow_id, kind), members in groups.items():
        base = _metrics(members[0][1])
        for position, (run, flow) in enumerate(members):
            metrics = _metrics(flow)
            delay_key = "delay_p95_ms" if _number(metrics.get("delay_p95_ms")) is not None \
                else "rtt_p95_ms"
            delay = metrics.get(delay_key)
            delay_cell = _fmt(delay, "ms") + (" (RTT)" if delay_key == "rtt_p95_ms"
                                              and _number(delay) is not None else "")
            first = position == 0
            table.add_row(flow_id if first else "", kind if first else "", run.label,
                          controller(flow), _fmt_rate(metrics.get("recv_rate_bps")),
                          "" if first else _delta(base.get("recv_rate_bps"),
                                                  metrics.get("recv_rate_bps"), "green"),
                          delay_cell,
                          "" if first else _delta(base.get(delay_key), delay, "red"),
                          _fmt(metrics.get("loss"), "pct"), _fmt(_score(flow), "score"),
                          end_section=position == len(members) - 1)
    return table


def _delta(base: Any, value: Any, up_style: str) -> Text:
    """Relative change; ``up_style`` colours an increase (green for rate, red for delay)."""
    before, after = _number(base), _number(value)
    if before is None or after is None or before == 0:
        return Text("-")
    change = (after - before) / before
    down_style = "red" if up_style == "green" else "green"
    if abs(change) < 0.005:
        return Text("±0 %")
    return Text(f"{change * 100:+.0f} %", style=up_style if change > 0 else down_style)


def comparison_points(runs: Sequence[Run]) -> tuple[list[ComparisonPoint], list[str]]:
    """The plottable run × flow points, and what could not be placed (and why)."""
    points: list[ComparisonPoint] = []
    skipped: list[str] = []
    for run in runs:
        for flow in run.flows:
            metrics = _metrics(flow)
            rate = _number(metrics.get("recv_rate_bps"))
            delay, source = _number(metrics.get("delay_p95_ms")), "one-way"
            if delay is None and _number(metrics.get("rtt_p95_ms")) is not None:
                delay, source = float(metrics["rtt_p95_ms"]) / 2.0, "rtt/2"
            name = f"{run.label}: {flow['id']}"
            if rate is None:
                skipped.append(f"{name} (no receive rate)")
            elif delay is None:
                skipped.append(f"{name} (no delay measured)")
            elif delay <= 0:
                skipped.append(f"{name} (p95 delay {delay:g} ms cannot go on a log axis)")
            else:
                points.append(ComparisonPoint(run.label, flow["id"], str(flow.get("kind", "?")),
                                              controller(flow), rate, delay, source))
    return points, skipped


def plot_comparison(points: Sequence[ComparisonPoint], out: Path, *, title: str) -> Path:
    """Draw ``comparison_figure`` to ``out`` (PNG)."""
    fig = comparison_figure(points, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=COMPARISON_DPI)
    return out


def comparison_figure(points: Sequence[ComparisonPoint], *, title: str) -> Figure:
    """Pantheon's throughput vs p95 one-way delay plot: one point per run × flow."""
    fig = Figure(figsize=COMPARISON_SIZE_IN, dpi=COMPARISON_DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.08, right=0.70, top=0.90, bottom=0.11)
    ax = fig.add_subplot()
    runs = list(dict.fromkeys(point.run for point in points))
    colour = {run: RUN_COLOURS[i % len(RUN_COLOURS)] for i, run in enumerate(runs)}
    for point in points:
        hollow = point.delay_source != "one-way"
        ax.scatter([point.delay_p95_ms], [point.throughput_bps / 1e6], s=70,
                   marker=KIND_MARKERS.get(point.kind, OTHER_MARKER),
                   facecolors="none" if hollow else colour[point.run],
                   edgecolors=colour[point.run], linewidths=1.6, zorder=3)
    ax.set_xscale("log")
    delays = [point.delay_p95_ms for point in points]
    decades = math.log10(max(delays) / min(delays)) if delays else 0.0
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades > 3 else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.invert_xaxis()  # Pantheon: lower delay to the right
    ax.margins(x=0.15, y=0.12)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("95th percentile one-way delay (ms, log scale; lower is right)")
    ax.set_ylabel("average throughput (Mbit/s)")
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_title("better: up and right ↗", fontsize=8, loc="right", color="#777777")
    ax.grid(True, which="major", color="#DDDDDD", linewidth=0.6)
    ax.set_axisbelow(True)
    _label_points(fig, ax, points, colour)
    handles = [Line2D([], [], linestyle="", marker="o", color=colour[run], label=run)
               for run in runs]
    kinds = list(dict.fromkeys(point.kind for point in points))
    handles += [Line2D([], [], linestyle="", marker=KIND_MARKERS.get(kind, OTHER_MARKER),
                       color="#555555", label=f"kind {kind}") for kind in kinds]
    if any(point.delay_source != "one-way" for point in points):
        handles.append(Line2D([], [], linestyle="", marker="s", markerfacecolor="none",
                              color="#555555", label="hollow: half the RTT p95\n"
                                                     "(no one-way delay)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
              frameon=False, borderaxespad=0.0)
    return fig


#: Where a point's label may go, in points from the marker, tried in order.
_LABEL_OFFSETS = ((7, 5), (7, -12), (-7, 5), (-7, -12), (0, 11), (0, -18), (14, 16),
                  (14, -24), (-14, 16), (-14, -24), (0, 24), (0, -32))


def _label_points(fig: Figure, ax: Axes, points: Sequence[ComparisonPoint],
                  colour: dict[str, str]) -> None:
    """Name each point, placing each label where it overlaps no earlier label or
    marker (greedy over a few offsets; the least-overlapping one if none is free)."""
    ax.autoscale_view()
    ax.set_xlim(ax.get_xlim())  # freeze the limits: placement needs final positions
    ax.set_ylim(ax.get_ylim())
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    inside = ax.get_window_extent(renderer)
    markers = [ax.transData.transform((p.delay_p95_ms, p.throughput_bps / 1e6)) for p in points]
    marker_boxes = [Bbox.from_extents(x - 6, y - 6, x + 6, y + 6) for x, y in markers]
    taken: list[Bbox] = []
    scale = fig.dpi / 72.0
    for point in points:
        text = point.flow if point.kind == "probe" else f"{point.flow} ({point.controller})"
        best: tuple[float, Annotation] | None = None
        for dx, dy in _LABEL_OFFSETS:
            label = ax.annotate(text, (point.delay_p95_ms, point.throughput_bps / 1e6),
                                xytext=(dx, dy), textcoords="offset points", fontsize=7.5,
                                color=colour[point.run],
                                ha="left" if dx > 0 else "right" if dx < 0 else "center")
            box = label.get_window_extent(renderer).expanded(1.0, 1.0).padded(1.0 * scale)
            overlap = sum(_overlap_area(box, other) for other in taken + marker_boxes)
            overlap += box.width * box.height - _overlap_area(box, inside)  # sticking out
            if best is None or overlap < best[0]:
                if best is not None:
                    best[1].remove()
                best = (overlap, label)
            else:
                label.remove()
            if overlap == 0:
                break
        assert best is not None
        chosen: Annotation = best[1]
        if chosen.xyann != _LABEL_OFFSETS[0]:  # moved away: a leader line says whose it is
            chosen.remove()
            chosen = ax.annotate(text, chosen.xy, xytext=chosen.xyann, textcoords="offset points",
                                 fontsize=7.5, color=colour[point.run],
                                 ha=chosen.get_horizontalalignment(),
                                 arrowprops={"arrowstyle": "-", "color": colour[point.run],
                                             "linewidth": 0.6, "shrinkA": 1, "shrinkB": 5})
        taken.append(chosen.get_window_extent(renderer))


def _overlap_area(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def comparison_title(runs: Sequence[Run]) -> str:
    scenarios = list(dict.fromkeys(run.scenario_name for run in runs))
    which = (f"scenario {scenarios[0]}" if len(scenarios) == 1
             else f"scenarios {', '.join(scenarios)}")
    return f"throughput vs delay, {which} ({len(runs)} runs)"


def print_report(runs: Sequence[Run], console: Console,
                 comparison_out: Path | None = None) -> Path | None:
    """Print every run, then (two runs or more) the comparison; returns the plot written."""
    for run in runs:
        console.print(flows_table(run))
        for extra in (traffic_table(run), agents_table(run)):
            if extra is not None:
                console.print(extra)
        console.print(fidelity_summary(run))
        console.print(f"run directory: {run.path}", style="dim")
        console.print()
    if len(runs) < 2:
        return None
    console.print(comparison_table(runs))
    points, skipped = comparison_points(runs)
    for reason in skipped:
        console.print(f"not plotted: {reason}", style="yellow")
    if not points:
        console.print("no flow has both a rate and a delay: no comparison plot", style="yellow")
        return None
    plot = plot_comparison(points, comparison_out or Path(COMPARISON_FILE),
                           title=comparison_title(runs))
    console.print(f"comparison plot: {plot}")
    return plot


def report_json(runs: Sequence[Run], comparison_plot: Path | None) -> dict[str, Any]:
    """The report as data: per run the flows and the verdict; the comparison points."""
    data: dict[str, Any] = {"runs": [{
        "run_dir": str(run.path), "label": run.label, "scenario": run.scenario_name,
        "netlab_version": run.results.get("netlab_version"),
        "kernel": run.results.get("kernel"), "backend": run.results.get("backend"),
        "faithful": run.fidelity.get("faithful"), "verdicts": run.fidelity.get("verdicts", []),
        "flows": [{"id": flow["id"], "kind": flow.get("kind"), "from": flow.get("from"),
                   "to": flow.get("to"), "controller": controller(flow),
                   "metrics": _metrics(flow), "scores": flow.get("scores") or {}}
                  for flow in run.flows],
        "agents": run.results.get("agents") or []} for run in runs]}
    if len(runs) >= 2:
        points, skipped = comparison_points(runs)
        data["comparison"] = {"points": [asdict(point) for point in points],
                              "not_plotted": skipped,
                              "plot": str(comparison_plot) if comparison_plot else None}
    return data
