"""Per-flow PNG plots of a run: what the flow got, against what the link offered.

One figure per flow, ``RUN_DIR/plots/<flow-id>.png``, drawn from the flow's
``RUN_DIR/timeseries/<flow-id>.csv`` (100 ms bins from the run's start) and
its entry in ``results.json``. Stacked panels sharing the time axis:

1. receive rate, with the link capacity and, for RTC, the sender's target;
2. one-way delay per bin, with the run's p50/p95 as reference lines;
3. loss per bin (only when the flow lost something);
4. estimate vs capacity (only when the flow has an estimate), the gap shaded
   so over- and under-estimation read at a glance.

Capacity outages (capacity 0) are shaded grey in every panel. Figures are
built on ``matplotlib.figure.Figure`` with the Agg canvas, never pyplot, so
plotting holds no global state and needs no display.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from netlab.errors import NetlabError

FloatArray = npt.NDArray[np.float64]

TIMESERIES_DIR = "timeseries"
PLOTS_DIR = "plots"
RESULTS_FILE = "results.json"
#: The CSV header of the results contract, in order.
TIMESERIES_COLUMNS = ("t_s", "recv_rate_bps", "delay_ms", "loss", "target_bps",
                      "estimate_bps", "capacity_bps")

#: Figure geometry: a fixed width so every plot of a run lines up, and a
#: height that grows with the number of panels.
FIG_WIDTH_IN = 10.0
PANEL_HEIGHT_IN = 2.4
HEADER_HEIGHT_IN = 0.9
XLABEL_HEIGHT_IN = 0.5
DPI = 120

# Colour-blind-safe (Okabe-Ito) colours, one meaning each across all plots.
RECV_COLOUR = "#0072B2"
CAPACITY_COLOUR = "#333333"
TARGET_COLOUR = "#E69F00"
ESTIMATE_COLOUR = "#009E73"
DELAY_COLOUR = "#D55E00"
LOSS_COLOUR = "#CC79A7"
OUTAGE_COLOUR = "#BBBBBB"


@dataclass(frozen=True)
class FlowSeries:
    """One flow's time series; NaN where a cell was empty (does not apply)."""

    t_s: FloatArray
    recv_rate_bps: FloatArray
    delay_ms: FloatArray
    loss: FloatArray
    target_bps: FloatArray
    estimate_bps: FloatArray
    capacity_bps: FloatArray

    def has(self, column: str) -> bool:
        values: FloatArray = getattr(self, column)
        return bool(np.any(np.isfinite(values)))


def read_timeseries(path: Path) -> FlowSeries:
    """Parse a flow's CSV; an empty cell reads as NaN (the column does not apply)."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise NetlabError(f"cannot read the time series: {exc.strerror}", where=str(path),
                          fix="re-run the scenario to regenerate the run directory") from None
    if not rows:
        raise NetlabError("the time series file is empty", where=str(path),
                          fix="re-run the scenario to regenerate the run directory")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in TIMESERIES_COLUMNS if name not in header]
    if missing:
        raise NetlabError(f"the time series lacks the column(s) {', '.join(missing)}",
                          where=f"{path}:1",
                          fix=f"the header must be {','.join(TIMESERIES_COLUMNS)}")
    index = {name: header.index(name) for name in TIMESERIES_COLUMNS}
    columns: dict[str, list[float]] = {name: [] for name in TIMESERIES_COLUMNS}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < len(header):
            raise NetlabError(f"row has {len(row)} cells, the header has {len(header)}",
                              where=f"{path}:{line_no}",
                              fix="leave a cell empty (',,') rather than dropping it")
        for name, column in index.items():
            cell = row[column].strip()
            try:
                columns[name].append(float(cell) if cell else math.nan)
            except ValueError:
                raise NetlabError(f"{name} is {cell!r}, not a number", where=f"{path}:{line_no}",
                                  fix="cells hold plain numbers in SI units, or nothing") from None
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
    if np.any(~np.isfinite(arrays["t_s"])):
        raise NetlabError("t_s has an empty cell", where=str(path),
                          fix="every row needs its bin's start time in seconds")
    return FlowSeries(**arrays)


def load_results(run_dir: Path) -> dict[str, Any]:
    """``RUN_DIR/results.json``, checked to be a run directory's results."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise NetlabError(f"run directory {run_dir} does not exist", where=str(run_dir),
                          fix="give a directory written by 'netlab run' or 'netlab up' "
                              "(default: ./runs/<scenario>-<time>)")
    if not run_dir.is_dir():
        fix = ("give the directory that holds it" if run_dir.name == RESULTS_FILE
               else "give a run directory (the one that holds results.json)")
        raise NetlabError(f"{run_dir} is not a directory", where=str(run_dir), fix=fix)
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        nested = sorted(p.parent.name for p in run_dir.glob(f"*/{RESULTS_FILE}"))
        fix = ("it holds run directories; give one or more of them, e.g. "
               + ", ".join(str(run_dir / name) for name in nested[:3])
               + (f" (or {run_dir}/*)" if len(nested) > 1 else "")
               if nested else
               "give a directory written by 'netlab run' or 'netlab up'; a run that was "
               "interrupted before its results were written has none")
        raise NetlabError(f"no {RESULTS_FILE} in {run_dir}", where=str(path), fix=fix)
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NetlabError(f"{RESULTS_FILE} is not valid JSON: {exc.msg}",
                          where=f"{path}:{exc.lineno}:{exc.colno}",
                          fix="the file was damaged or truncated; re-run the scenario") from None
    if not isinstance(results, dict) or not isinstance(results.get("flows"), list):
        raise NetlabError(f"{RESULTS_FILE} has no 'flows' list", where=f"{path}: flows",
                          fix="this is not a netlab results file; re-run the scenario")
    for position, flow in enumerate(results["flows"]):
        if not isinstance(flow, dict) or not isinstance(flow.get("id"), str):
            raise NetlabError("a flow has no 'id'", where=f"{path}: flows[{position}]",
                              fix="this is not a netlab results file; re-run the scenario")
    return results


def format_ms(value: float) -> str:
    """Milliseconds with the digits that matter: 510 ms, 47.6 ms, 0.0385 ms."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def controller(flow: dict[str, Any]) -> str:
    """What set the flow's rate: the RTC estimator or the TCP congestion control."""
    value = flow.get("estimator", flow.get("cc"))
    if isinstance(value, dict):  # an Estimator written field by field
        kind = str(value.get("kind", "?"))
        if value.get("rate_bps"):
            return f"{kind}:{float(value['rate_bps']) / 1e6:g}Mbit"
        return f"{kind}:{value['plugin']}" if value.get("plugin") else kind
    return "-" if value is None else str(value)


def route(flow: dict[str, Any]) -> str:
    """Where a flow ran: ``from → to``, or ``in HOST`` for a one-host command."""
    if "from" not in flow and "host" in flow:
        return f"in {flow['host']}"
    return f"{flow.get('from', '?')} → {flow.get('to', '?')}"


def flow_file_stem(flow_id: str) -> str:
    """The flow id as a file name; ids are names, never paths."""
    if not flow_id or "/" in flow_id or "\0" in flow_id or flow_id in (".", ".."):
        raise NetlabError(f"flow id {flow_id!r} cannot name a file",
                          where="results.json: flows[].id",
                          fix="flow ids must not contain '/' (the lab names them; report a bug)")
    return flow_id


def plot_run(run_dir: Path) -> list[Path]:
    """Draw ``plots/<flow-id>.png`` for every flow of the run that has a time series.

    Flows without ``timeseries/<flow-id>.csv`` are skipped (nothing to plot);
    returns the PNGs written, in the order of ``results.json``'s flows.
    """
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    written: list[Path] = []
    for flow in results["flows"]:
        csv_path = run_dir / TIMESERIES_DIR / f"{flow_file_stem(flow['id'])}.csv"
        if not csv_path.is_file():
            continue
        out = run_dir / PLOTS_DIR / f"{flow_file_stem(flow['id'])}.png"
        plot_flow(read_timeseries(csv_path), flow, results, out)
        written.append(out)
    return written


def plot_flow(series: FlowSeries, flow: dict[str, Any], results: dict[str, Any],
              out: Path) -> Path:
    """Draw one flow's figure to ``out`` (PNG)."""
    fig = flow_figure(series, flow, results)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=DPI)
    return out


def panel_count(series: FlowSeries) -> int:
    """How many panels the flow's figure has (rate and delay always)."""
    return 2 + int(_shows_loss(series)) + int(series.has("estimate_bps"))


def figure_size_px(panels: int) -> tuple[int, int]:
    """The PNG's (width, height) in pixels for a figure of ``panels`` panels."""
    height_in = HEADER_HEIGHT_IN + XLABEL_HEIGHT_IN + PANEL_HEIGHT_IN * panels
    return round(FIG_WIDTH_IN * DPI), round(height_in * DPI)


def flow_figure(series: FlowSeries, flow: dict[str, Any], results: dict[str, Any]) -> Figure:
    panels = panel_count(series)
    width_px, height_px = figure_size_px(panels)
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    height_in = height_px / DPI
    fig.subplots_adjust(left=0.08, right=0.80, top=1 - HEADER_HEIGHT_IN / height_in,
                        bottom=XLABEL_HEIGHT_IN / height_in, hspace=0.28)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(_title(flow, results), x=0.08, y=1 - 0.12 / height_in, ha="left",
                 va="top", fontsize=11)
    metrics = flow.get("metrics") or {}
    rate_scale, rate_unit = _rate_unit(series)
    t = series.t_s
    step = _bin_width(t)
    edges = np.append(t, t[-1] + step) if t.size else t

    _rate_panel(axes[0], series, edges, rate_scale, rate_unit, metrics)
    _delay_panel(axes[1], series, edges, metrics, str(flow.get("kind", "")))
    position = 2
    if _shows_loss(series):
        _loss_panel(axes[position], series, edges, metrics)
        position += 1
    if series.has("estimate_bps"):
        _estimate_panel(axes[position], series, edges, rate_scale, rate_unit, metrics)

    duration = _duration_s(results, series, step)
    for position, ax in enumerate(axes):
        _shade_outages(ax, series, edges, labelled=position == 0)
        ax.set_xlim(0.0, duration)
        ax.grid(True, color="#DDDDDD", linewidth=0.6)
        ax.set_axisbelow(True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                      frameon=False, borderaxespad=0.0)
    axes[-1].set_xlabel("time since run start (s)")
    return fig


def _title(flow: dict[str, Any], results: dict[str, Any]) -> str:
    scenario = results.get("scenario") or {}
    kind = flow.get("kind", "?")
    how = controller(flow)
    first = (f"flow {flow['id']} · {kind}" + (f" ({how})" if how != "-" else "")
             + f" · {route(flow)}")
    second = (f"scenario {scenario.get('name', '?')} · {results.get('backend', '?')} shaping"
              f" · {_summary(flow)}")
    return f"{first}\n{second}"


def _summary(flow: dict[str, Any]) -> str:
    """The flow's headline numbers, so a plot read alone still says how it did."""
    metrics = flow.get("metrics") or {}
    scores = flow.get("scores") or {}
    parts = []
    if isinstance(metrics.get("recv_rate_bps"), int | float):
        parts.append(f"rate {metrics['recv_rate_bps'] / 1e6:.2f} Mbit/s")
    if isinstance(metrics.get("delay_p95_ms"), int | float):
        parts.append(f"delay p95 {format_ms(metrics['delay_p95_ms'])} ms")
    elif isinstance(metrics.get("rtt_p95_ms"), int | float):
        parts.append(f"RTT p95 {format_ms(metrics['rtt_p95_ms'])} ms")
    if isinstance(metrics.get("loss"), int | float):
        parts.append(f"loss {metrics['loss'] * 100:.2f} %")
    if isinstance(scores.get("network"), int | float):
        parts.append(f"network score {scores['network']:.1f}")
    return " · ".join(parts) if parts else "no metrics"


def _bin_width(t: FloatArray) -> float:
    return float(np.median(np.diff(t))) if t.size > 1 else 0.1


def _duration_s(results: dict[str, Any], series: FlowSeries, step: float) -> float:
    scenario = results.get("scenario") or {}
    duration = scenario.get("duration_s")
    end = float(series.t_s[-1] + step) if series.t_s.size else 1.0
    if isinstance(duration, int | float) and duration > 0:
        return max(float(duration), end) if end > float(duration) * 1.05 else float(duration)
    return end


def _rate_unit(series: FlowSeries) -> tuple[float, str]:
    """Mbit/s unless everything plotted stays under 1 Mbit/s (then kbit/s)."""
    peaks = [np.nanmax(values) for values in (series.recv_rate_bps, series.target_bps,
                                              series.estimate_bps, series.capacity_bps)
             if np.any(np.isfinite(values))]
    if peaks and max(peaks) < 1e6:
        return 1e-3, "kbit/s"
    return 1e-6, "Mbit/s"


def _stairs(ax: Axes, values: FloatArray, edges: FloatArray, scale: float = 1.0,
            **style: Any) -> None:
    """Bin values drawn as steps over their bins; NaN leaves a gap."""
    baseline = style.pop("baseline", None)  # None: a line, not a filled area
    if values.size and np.any(np.isfinite(values)):
        ax.stairs(values * scale, edges, baseline=baseline, **style)


def _rate_panel(ax: Axes, series: FlowSeries, edges: FloatArray, scale: float, unit: str,
                metrics: dict[str, Any]) -> None:
    _stairs(ax, series.capacity_bps, edges, scale, color=CAPACITY_COLOUR, linestyle="--",
            linewidth=1.4, label="capacity")
    _stairs(ax, series.target_bps, edges, scale, color=TARGET_COLOUR, linewidth=1.2,
            label="target (sender)")
    _stairs(ax, series.recv_rate_bps, edges, scale, color=RECV_COLOUR, linewidth=1.4,
            label="receive rate")
    if isinstance(metrics.get("recv_rate_bps"), int | float):
        ax.axhline(metrics["recv_rate_bps"] * scale, color=RECV_COLOUR, linestyle=":",
                   linewidth=1.0, label=f"mean {metrics['recv_rate_bps'] * scale:.3g} {unit}")
    if not series.has("recv_rate_bps"):
        ax.text(0.5, 0.5, "no receive-rate samples in the time series", transform=ax.transAxes,
                ha="center", va="center", fontsize=9, color="#555555")
    ax.set_ylabel(f"rate ({unit})")
    ax.set_title("receive rate", fontsize=9, loc="left")
    ax.set_ylim(bottom=0.0)


def _delay_panel(ax: Axes, series: FlowSeries, edges: FloatArray, metrics: dict[str, Any],
                 kind: str) -> None:
    ax.set_ylabel("delay (ms)")
    ax.set_title("one-way delay per 100 ms bin" if edges.size < 2 or
                 abs(float(edges[1] - edges[0]) - 0.1) < 1e-9 else "one-way delay per bin",
                 fontsize=9, loc="left")
    if not series.has("delay_ms"):
        note = "no one-way delay measured for this flow"
        if kind == "tcp":
            rtt = metrics.get("rtt_p50_ms")
            note += ("\n(TCP: the kernel's smoothed RTT is in results.json"
                     + (f", p50 {format_ms(rtt)} ms)" if isinstance(rtt, int | float) else ")"))
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center",
                fontsize=9, color="#555555")
        ax.set_yticks([])
        return
    _stairs(ax, series.delay_ms, edges, color=DELAY_COLOUR, linewidth=1.3, label="delay")
    for key, style in (("delay_p50_ms", ":"), ("delay_p95_ms", "--")):
        value = metrics.get(key)
        if isinstance(value, int | float):
            ax.axhline(value, color=DELAY_COLOUR, linestyle=style, linewidth=0.9, alpha=0.8,
                       label=f"{key.split('_')[1]} {format_ms(value)} ms")
    ax.set_ylim(bottom=0.0)


def _shows_loss(series: FlowSeries) -> bool:
    return bool(np.nanmax(series.loss, initial=0.0) > 0) if series.has("loss") else False


def _loss_panel(ax: Axes, series: FlowSeries, edges: FloatArray, metrics: dict[str, Any]) -> None:
    _stairs(ax, np.nan_to_num(series.loss), edges, 100.0, color=LOSS_COLOUR, linewidth=1.2,
            fill=True, baseline=0.0, alpha=0.6, label="loss")
    if isinstance(metrics.get("loss"), int | float):
        ax.axhline(metrics["loss"] * 100.0, color=LOSS_COLOUR, linestyle=":", linewidth=1.0,
                   label=f"overall {metrics['loss'] * 100:.2f} %")
    ax.set_ylabel("loss (%)")
    ax.set_title("packet loss per bin", fontsize=9, loc="left")
    ax.set_ylim(bottom=0.0)


def _estimate_panel(ax: Axes, series: FlowSeries, edges: FloatArray, scale: float, unit: str,
                    metrics: dict[str, Any]) -> None:
    estimate = series.estimate_bps * scale
    _stairs(ax, series.capacity_bps, edges, scale, color=CAPACITY_COLOUR, linestyle="--",
            linewidth=1.4, label="capacity")
    _stairs(ax, series.estimate_bps, edges, scale, color=ESTIMATE_COLOUR, linewidth=1.4,
            label="estimate")
    if series.has("capacity_bps"):
        capacity = series.capacity_bps * scale
        both = np.isfinite(estimate) & np.isfinite(capacity)
        # fill_between over step edges: repeat each bin's value at its two edges
        x = np.repeat(edges, 2)[1:-1]
        est2, cap2, both2 = np.repeat(estimate, 2), np.repeat(capacity, 2), np.repeat(both, 2)
        ax.fill_between(x, est2, cap2, where=both2 & (est2 > cap2), step=None,
                        color="#D55E00", alpha=0.25, linewidth=0, label="over capacity")
        ax.fill_between(x, est2, cap2, where=both2 & (est2 < cap2), step=None,
                        color="#56B4E9", alpha=0.25, linewidth=0, label="under capacity")
    title = ("bandwidth estimate vs capacity" if series.has("capacity_bps")
             else "bandwidth estimate (this path's capacity is not known)")
    tracking = metrics.get("estimate_vs_capacity")
    if isinstance(tracking, dict) and isinstance(tracking.get("mape"), int | float):
        title += f" · mean error {tracking['mape'] * 100:.0f} %"
        if isinstance(tracking.get("over_fraction"), int | float):
            title += f", over capacity {tracking['over_fraction'] * 100:.0f} % of the time"
    ax.set_ylabel(f"rate ({unit})")
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_ylim(bottom=0.0)


def _shade_outages(ax: Axes, series: FlowSeries, edges: FloatArray, *, labelled: bool) -> None:
    """Grey spans where the capacity is zero: nothing can get through there.
    Only the top panel names them in its legend."""
    outage = np.isfinite(series.capacity_bps) & (series.capacity_bps <= 0)
    if not np.any(outage):
        return
    flips = np.flatnonzero(np.diff(np.concatenate(([0], outage.astype(np.int8), [0]))))
    for begin, end in zip(flips[::2], flips[1::2], strict=True):
        ax.axvspan(float(edges[begin]), float(edges[end]), color=OUTAGE_COLOUR, alpha=0.35,
                   linewidth=0, label="outage (capacity 0)" if labelled else None)
        labelled = False
