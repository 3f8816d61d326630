"""`netlab traces`: list, inspect, convert, generate and plot bandwidth traces."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labcore.units import parse_duration, parse_packets, parse_percent, parse_rate
from netlab.errors import NetlabError
from shaping.traces import (
    FORMATS,
    GenetParams,
    Trace,
    corpus,
    format_for_path,
    generate,
    load_trace,
    steps,
    write_trace,
)

NAME = "traces"
HELP = "list, inspect, convert, generate and plot bandwidth traces"

# -- statistics -------------------------------------------------------------


def trace_stats(trace: Trace, granularity_s: float = 0.1) -> dict[str, object]:
    """Numbers `info` prints; rate percentiles over ``granularity_s`` bins."""
    import numpy as np

    binned = trace.binned(min(granularity_s, trace.period_s))
    rates = np.asarray(binned.rates_bps)
    widths = np.diff(np.append(np.asarray(binned.times_s), binned.period_s))
    order = np.argsort(rates)
    cumulative = np.cumsum(widths[order]) / widths.sum()

    def percentile(q: float) -> float:
        return float(rates[order][min(int(np.searchsorted(cumulative, q)), len(rates) - 1)])

    stats: dict[str, object] = {
        "name": trace.name,
        "format": trace.source_format,
        "period_s": trace.period_s,
        "loop": trace.loop,
        "segments": trace.segment_count,
        "mean_rate_bps": trace.mean_rate_bps(),
        "min_rate_bps": float(rates.min()),
        "p5_rate_bps": percentile(0.05),
        "p50_rate_bps": percentile(0.5),
        "p95_rate_bps": percentile(0.95),
        "max_rate_bps": float(rates.max()),
        "outage_fraction": binned.outage_fraction(),
        "stats_granularity_s": min(granularity_s, trace.period_s),
    }
    if trace.opportunities_ms is not None:
        stats["opportunities"] = len(trace.opportunities_ms)
    for key, values in (
        ("delay_s", trace.delays_s),
        ("loss", trace.losses),
        ("jitter_s", trace.jitters_s),
    ):
        if values is not None:
            stats[key] = {"min": min(values), "max": max(values)}
    if trace.queue_packets is not None:
        stats["queue_packets"] = trace.queue_packets
    if trace.delay_noise_s is not None:
        stats["delay_noise_s"] = trace.delay_noise_s
    return stats


def _mbit(bps: object) -> str:
    return f"{float(bps) / 1e6:.3f} Mbit/s" if isinstance(bps, int | float) else str(bps)


def _num(stats: dict[str, object], key: str) -> float:
    value = stats[key]
    assert isinstance(value, int | float)
    return float(value)


def _print_stats(stats: dict[str, object]) -> None:
    print(f"trace      {stats['name']}  ({stats['format']})")
    print(
        f"length     {stats['period_s']:.3f} s, "
        f"{'loops' if stats['loop'] else 'holds the last value'}"
        f", {stats['segments']} segments"
    )
    if "opportunities" in stats:
        print(f"packets    {stats['opportunities']} delivery opportunities of 1504 B per period")
    print(f"mean rate  {_mbit(stats['mean_rate_bps'])}")
    granularity_ms = _num(stats, "stats_granularity_s") * 1000
    print(
        f"rate       min {_mbit(stats['min_rate_bps'])}, p5 {_mbit(stats['p5_rate_bps'])}, "
        f"p50 {_mbit(stats['p50_rate_bps'])}, p95 {_mbit(stats['p95_rate_bps'])}, "
        f"max {_mbit(stats['max_rate_bps'])} (over {granularity_ms:g} ms bins)"
    )
    print(f"outage     {_num(stats, 'outage_fraction') * 100:.1f} % of the time at zero capacity")
    for key, label, scale, unit in (
        ("delay_s", "delay", 1000, "ms one-way"),
        ("loss", "loss", 100, "%"),
        ("jitter_s", "jitter", 1000, "ms"),
    ):
        value = stats.get(key)
        if isinstance(value, dict):
            print(f"{label:<10} {value['min'] * scale:g}..{value['max'] * scale:g} {unit}")
    if "queue_packets" in stats:
        print(f"queue      {stats['queue_packets']} packets")
    if "delay_noise_s" in stats:
        print(f"delay noise up to {_num(stats, 'delay_noise_s') * 1000:g} ms per packet")


# -- subcommands ------------------------------------------------------------


def _load(args: argparse.Namespace, attribute: str = "trace") -> Trace:
    fmt = getattr(args, "input_format", None)
    return load_trace(getattr(args, attribute), format=fmt, corpus_root=args.corpus)


def _cmd_list(args: argparse.Namespace) -> int:
    entries = corpus.list_traces(args.corpus)
    if not entries:
        print(f"no traces found in {corpus.corpus_dir(args.corpus)}")
        return 1
    width = max(len(entry.name) for entry in entries)
    for entry in entries:
        trace = load_trace(str(entry.path))
        print(
            f"{entry.name:<{width}}  {trace.source_format:<10}  {trace.period_s:8.1f} s"
            f"  {_mbit(trace.mean_rate_bps()):>16}"
        )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    stats = trace_stats(_load(args), parse_duration(args.granularity, where="--granularity"))
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        _print_stats(stats)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    trace = _load(args, "source")
    if args.granularity:
        trace = trace.binned(parse_duration(args.granularity, where="--granularity")).merged()
    destination = Path(args.destination)
    fmt = args.to or format_for_path(destination)
    write_trace(trace, destination, fmt)
    written = load_trace(str(destination), format=fmt)
    print(
        f"wrote {destination} ({fmt}): {written.period_s:.3f} s, "
        f"mean {_mbit(written.mean_rate_bps())} (source {_mbit(trace.mean_rate_bps())})"
    )
    return 0


def _parse_steps(text: str) -> list[tuple[float, float]]:
    levels: list[tuple[float, float]] = []
    for index, item in enumerate(part for part in text.split(",") if part.strip()):
        rate, sep, duration = item.partition(":")
        if not sep:
            raise NetlabError(
                f"step {index + 1} ({item!r}) has no duration",
                where="--steps",
                fix="write rate:duration pairs, e.g. 10Mbit:10s,0:2s,10Mbit:10s",
            )
        levels.append((parse_rate(rate, allow_zero=True, where="--steps"),
                       parse_duration(duration, where="--steps")))
    return levels


def _cmd_generate(args: argparse.Namespace) -> int:
    delay = parse_duration(args.delay, where="--delay") if args.delay else None
    loss = parse_percent(args.loss, where="--loss") if args.loss else None
    destination = Path(args.output)
    if args.steps:
        trace = steps(_parse_steps(args.steps), delay_s=delay, loss=loss, name=destination.name)
    else:
        missing = [
            opt
            for opt, value in (
                ("--min-bw", args.min_bw),
                ("--max-bw", args.max_bw),
                ("--duration", args.duration),
            )
            if value is None
        ]
        if missing:
            raise NetlabError(
                f"missing {', '.join(missing)}",
                where="netlab traces generate",
                fix="give --min-bw, --max-bw and --duration (or --steps)",
            )
        params = GenetParams(
            min_bw_bps=parse_rate(args.min_bw, allow_zero=True, where="--min-bw"),
            max_bw_bps=parse_rate(args.max_bw, allow_zero=True, where="--max-bw"),
            duration_s=parse_duration(args.duration, where="--duration"),
            change_interval_s=parse_duration(args.interval, where="--interval"),
            delay_s=delay or 0.0,
            queue_packets=parse_packets(args.queue, where="--queue") if args.queue else None,
            loss=loss or 0.0,
            delay_noise_s=parse_duration(args.delay_noise, where="--delay-noise")
            if args.delay_noise
            else 0.0,
            seed=args.seed,
            loop=args.loop,
        )
        trace = generate(params, name=destination.name)
    fmt = args.format or format_for_path(destination)
    write_trace(trace, destination, fmt)
    print(
        f"wrote {destination} ({fmt}): {trace.period_s:.3f} s, mean {_mbit(trace.mean_rate_bps())}"
    )
    return 0


def plot_trace(trace: Trace, output: Path, granularity_s: float, title: str | None = None) -> None:
    """A PNG of capacity over one period (and delay when the trace has one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = (
        trace
        if trace.segment_count <= 5000 and trace.opportunities_ms is None
        else trace.binned(granularity_s)
    )
    times = [*shown.times_s, shown.period_s]
    rates = [r / 1e6 for r in shown.rates_bps]
    rates.append(rates[-1])
    has_delay = shown.delays_s is not None
    figure, axes = plt.subplots(
        2 if has_delay else 1, 1, figsize=(10, 5 if has_delay else 3.5), sharex=True, squeeze=False
    )
    axis = axes[0][0]
    axis.step(times, rates, where="post", linewidth=1.0, color="tab:blue", label="capacity")
    axis.axhline(
        trace.mean_rate_bps() / 1e6,
        color="tab:red",
        linestyle="--",
        linewidth=1.0,
        label=f"mean {trace.mean_rate_bps() / 1e6:.2f} Mbit/s",
    )
    axis.set_ylabel("capacity (Mbit/s)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right", fontsize="small", framealpha=0.85)
    binned_note = "" if shown is trace else f", {granularity_s * 1000:g} ms bins"
    axis.set_title(title or f"{trace.name or 'trace'} ({trace.source_format}{binned_note})")
    if has_delay and shown.delays_s is not None:
        delays = [d * 1000 for d in shown.delays_s]
        delays.append(delays[-1])
        axes[1][0].step(times, delays, where="post", color="tab:green", linewidth=1.0)
        axes[1][0].set_ylabel("one-way delay (ms)")
        axes[1][0].set_ylim(bottom=0)
        axes[1][0].grid(alpha=0.3)
    axis.set_xlim(0, shown.period_s)
    axes[-1][0].set_xlabel("time (s)")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)


def _cmd_plot(args: argparse.Namespace) -> int:
    trace = _load(args)
    output = Path(args.output) if args.output else Path(Path(trace.name or "trace").name + ".png")
    plot_trace(trace, output, parse_duration(args.granularity, where="--granularity"))
    print(f"wrote {output}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="directory of bundled traces (default: the repository's traces/)",
    )
    sub = parser.add_subparsers(dest="traces_command", metavar="ACTION")

    listing = sub.add_parser("list", help="list the bundled traces by short name")
    listing.set_defaults(action=_cmd_list)

    info = sub.add_parser("info", help="print a trace's length, rates, outages, delay and loss")
    info.add_argument("trace", help="a file path or a bundled trace name")
    info.add_argument("--format", dest="input_format", choices=FORMATS, help="skip detection")
    info.add_argument("--granularity", default="100ms", help="bin width for percentiles")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(action=_cmd_info)

    convert = sub.add_parser("convert", help="rewrite a trace in another format")
    convert.add_argument("source")
    convert.add_argument("destination")
    convert.add_argument("--from", dest="input_format", choices=FORMATS, help="skip detection")
    convert.add_argument(
        "--to",
        choices=FORMATS,
        help="output format (default from the suffix: .json OpenNetLab, "
        ".csv Genet CSV, .txt Pensieve, else Mahimahi)",
    )
    convert.add_argument("--granularity", help="average into bins first, e.g. 100ms")
    convert.set_defaults(action=_cmd_convert)

    gen = sub.add_parser("generate", help="make a synthetic trace (Genet's parameters, or steps)")
    gen.add_argument("output")
    gen.add_argument("--min-bw", help="lowest bandwidth, e.g. 1Mbit")
    gen.add_argument("--max-bw", help="highest bandwidth, e.g. 10Mbit")
    gen.add_argument("--interval", default="1s", help="bandwidth change interval (Genet T_s)")
    gen.add_argument("--duration", help="trace length, e.g. 30s")
    gen.add_argument("--delay", help="one-way delay, e.g. 20ms")
    gen.add_argument("--queue", help="queue size, e.g. 100pkt")
    gen.add_argument("--loss", help="random loss, e.g. 0.5%%")
    gen.add_argument("--delay-noise", help="most uniform delay noise per packet, e.g. 5ms")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--loop", action="store_true", help="loop instead of holding the last value")
    gen.add_argument("--steps", help="explicit steps instead: 10Mbit:10s,0:2s,10Mbit:10s")
    gen.add_argument("--format", choices=FORMATS, help="output format (default from the suffix)")
    gen.set_defaults(action=_cmd_generate)

    plot = sub.add_parser("plot", help="write a PNG of capacity over time")
    plot.add_argument("trace")
    plot.add_argument("-o", "--output", help="PNG path (default: NAME.png here)")
    plot.add_argument("--format", dest="input_format", choices=FORMATS, help="skip detection")
    plot.add_argument(
        "--granularity", default="100ms", help="bin width for Mahimahi and long traces"
    )
    plot.set_defaults(action=_cmd_plot)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action is None:
        raise NetlabError(
            "no traces action given",
            where="netlab traces",
            fix="use one of: list, info, convert, generate, plot (see netlab traces -h)",
        )
    code: int = action(args)  # a TraceError is a LabError: the CLI prints it
    return code
