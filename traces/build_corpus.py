"""Rebuild the bundled trace corpus and its README from their recipes.

Run from the repository root: ``python traces/build_corpus.py``. The real
traces it copies and converts are read from ``tests/data/external`` (verbatim
copies of the public files, origins in its README). ``--check``
rebuilds into a temporary directory and fails if any file differs, so the
corpus on disk is always what these recipes make. Every file's origin, licence
and statistics in README.md come from the RECIPES below.
"""

from __future__ import annotations

import argparse
import dataclasses
import filecmp
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shaping.traces import GenetParams, Trace, generate, load_trace, steps, write_trace

HERE = Path(__file__).resolve().parent
EXTERNAL = HERE.parent / "tests" / "data" / "external"
MAHIMAHI_ORIGIN = (
    "Mahimahi `traces/` (ravinet/mahimahi; recorded with Sprout's Saturator, Winstein et al., "
    "NSDI'13), copied verbatim (also in tests/data/external/mahimahi)"
)
MAHIMAHI_LICENSE = "GPL-3.0 (Mahimahi)"
ONL_LICENSE = "BSD-3-Clause (OpenNetLab gym)"
GENERATED = "netlab generator (shaping.traces.generator)"
OWN_LICENSE = "MIT (this project)"
MBIT = 1e6


@dataclass(frozen=True)
class Recipe:
    name: str  # path under traces/, with suffix
    origin: str
    license: str
    make: Callable[[Path], None]  # writes the file at the given path


def _copy(source: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        shutil.copyfile(EXTERNAL / source, path)

    return make


def _write(build: Callable[[], Trace], fmt: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        write_trace(build(), path, fmt)

    return make


def _with_rtt(
    source: str, rtt_ms: float, clip_above_bps: float | None = None
) -> Callable[[], Trace]:
    """An OpenNetLab trace with a fixed RTT added (and measurement spikes held over)."""

    def build() -> Trace:
        trace = load_trace(str(EXTERNAL / source))
        rates = list(trace.rates_bps)
        if clip_above_bps is not None:
            for i, rate in enumerate(rates):
                if rate > clip_above_bps and i > 0:
                    rates[i] = rates[i - 1]  # hold the previous capacity over the spike
        count = trace.segment_count
        return dataclasses.replace(
            trace,
            rates_bps=tuple(rates),
            delays_s=(rtt_ms / 2000.0,) * count,
            losses=trace.losses or (0.0,) * count,
        )

    return build


def _genet(**kwargs: float | int | bool | None) -> Callable[[], Trace]:
    return lambda: generate(GenetParams(**kwargs))  # type: ignore[arg-type]


RECIPES: tuple[Recipe, ...] = (
    # Cellular LTE (real, Mahimahi delivery opportunities).
    *(
        Recipe(
            f"cellular/{carrier.lower()}-lte-short.{direction}",
            MAHIMAHI_ORIGIN,
            MAHIMAHI_LICENSE,
            _copy(f"mahimahi/{carrier}-LTE-short.{direction}"),
        )
        for carrier in ("TMobile", "Verizon")
        for direction in ("up", "down")
    ),
    # Wired: constant rates in Mahimahi form (as Pantheon's calibrated links).
    Recipe(
        "wired/12mbit.trace",
        f"{GENERATED}: steps 12 Mbit/s for 1 s",
        OWN_LICENSE,
        _write(lambda: steps([(12 * MBIT, 1.0)]), "mahimahi"),
    ),
    Recipe(
        "wired/100mbit.trace",
        f"{GENERATED}: steps 100 Mbit/s for 1 s",
        OWN_LICENSE,
        _write(lambda: steps([(100 * MBIT, 1.0)]), "mahimahi"),
    ),
    Recipe(
        "wired/300kbps.json",
        "OpenNetLab gym tests/data/trace_300k.json, verbatim",
        ONL_LICENSE,
        _copy("opennetlab/trace_300k.json"),
    ),
    # 3G: synthetic HSDPA-like (no real 3G trace in tests/data/external).
    *(
        Recipe(
            f"cellular/3g-synthetic-hsdpa-{seed}.json",
            f"{GENERATED}: Genet params 0.3-4 Mbit/s, T_s 1 s, delay 60 ms one-way, "
            f"queue 60 pkt, delay noise 10 ms, 60 s, seed {seed}; Genet JSON",
            OWN_LICENSE,
            _write(
                _genet(
                    min_bw_bps=0.3 * MBIT,
                    max_bw_bps=4 * MBIT,
                    duration_s=60.0,
                    change_interval_s=1.0,
                    delay_s=0.060,
                    queue_packets=60,
                    delay_noise_s=0.010,
                    seed=seed,
                ),
                "genet",
            ),
        )
        for seed in (1, 2)
    ),
    # 5G (real, OpenNetLab).
    Recipe(
        "cellular/5g-opennetlab-12mbps.json",
        "OpenNetLab gym tests/data/5G_12mbps.json, verbatim",
        ONL_LICENSE,
        _copy("opennetlab/5G_12mbps.json"),
    ),
    # OpenNetLab's three classes, with the class RTT added to every entry.
    Recipe(
        "opennetlab/low/4g-500kbps.json",
        "OpenNetLab gym tests/data/4G_500kbps.json + rtt 55 ms",
        ONL_LICENSE,
        _write(_with_rtt("opennetlab/4G_500kbps.json", 55), "opennetlab"),
    ),
    Recipe(
        "opennetlab/low/wired-900kbps.json",
        "OpenNetLab gym tests/data/WIRED_900kbs.json + rtt 55 ms",
        ONL_LICENSE,
        _write(_with_rtt("opennetlab/WIRED_900kbs.json", 55), "opennetlab"),
    ),
    Recipe(
        "opennetlab/low/synthetic-0.3to1mbit.json",
        f"{GENERATED}: Genet params 0.3-1 Mbit/s, T_s 0.2 s, rtt 55 ms, 60 s, seed 9",
        OWN_LICENSE,
        _write(
            _genet(
                min_bw_bps=0.3 * MBIT,
                max_bw_bps=1 * MBIT,
                duration_s=60.0,
                change_interval_s=0.2,
                delay_s=0.0275,
                seed=9,
                loop=True,
            ),
            "opennetlab",
        ),
    ),
    Recipe(
        "opennetlab/medium/4g-3mbps.json",
        "OpenNetLab gym tests/data/4G_3mbps.json + rtt 62 ms; its 5 spikes above 20 Mbit/s "
        "(79.9-8040 Mbit/s for 200 ms, measurement artefacts) replaced by the previous entry",
        ONL_LICENSE,
        _write(_with_rtt("opennetlab/4G_3mbps.json", 62, clip_above_bps=20 * MBIT), "opennetlab"),
    ),
    Recipe(
        "opennetlab/medium/synthetic-2to3mbit.json",
        f"{GENERATED}: Genet params 2-3 Mbit/s, T_s 0.2 s, rtt 62 ms, 60 s, seed 7",
        OWN_LICENSE,
        _write(
            _genet(
                min_bw_bps=2 * MBIT,
                max_bw_bps=3 * MBIT,
                duration_s=60.0,
                change_interval_s=0.2,
                delay_s=0.031,
                seed=7,
                loop=True,
            ),
            "opennetlab",
        ),
    ),
    Recipe(
        "opennetlab/high/5g-12mbps.json",
        "OpenNetLab gym tests/data/5G_12mbps.json + rtt 30 ms",
        ONL_LICENSE,
        _write(_with_rtt("opennetlab/5G_12mbps.json", 30), "opennetlab"),
    ),
    Recipe(
        "opennetlab/high/synthetic-10to15mbit.json",
        f"{GENERATED}: Genet params 10-15 Mbit/s, T_s 0.2 s, rtt 30 ms, 60 s, seed 8",
        OWN_LICENSE,
        _write(
            _genet(
                min_bw_bps=10 * MBIT,
                max_bw_bps=15 * MBIT,
                duration_s=60.0,
                change_interval_s=0.2,
                delay_s=0.015,
                seed=8,
                loop=True,
            ),
            "opennetlab",
        ),
    ),
    # OpenNetLab's loss and RTT step patterns.
    Recipe(
        "patterns/loss-step.json",
        "OpenNetLab gym tests/data/loss/trace_loss_pattern_2.json, verbatim",
        ONL_LICENSE,
        _copy("opennetlab/loss_trace_loss_pattern_2.json"),
    ),
    Recipe(
        "patterns/rtt-step.json",
        "OpenNetLab gym tests/data/rtt/trace_rtt_pattern_2.json, verbatim",
        ONL_LICENSE,
        _copy("opennetlab/rtt_trace_rtt_pattern_2.json"),
    ),
    # Steps and outages.
    Recipe(
        "steps/10-2-10mbit.json",
        f"{GENERATED}: steps 10/2/10 Mbit/s, 10 s each, 20 ms one-way",
        OWN_LICENSE,
        _write(
            lambda: steps(
                [(10 * MBIT, 10.0), (2 * MBIT, 10.0), (10 * MBIT, 10.0)], delay_s=0.020, loss=0.0
            ),
            "opennetlab",
        ),
    ),
    Recipe(
        "steps/1-3-1mbit.json",
        f"{GENERATED}: steps 1/3/1 Mbit/s, 10 s each, 25 ms one-way (rtt 50 ms); "
        "the GCC ramp-up / drain benchmark (bench/endpoints.py)",
        OWN_LICENSE,
        _write(
            lambda: steps(
                [(1 * MBIT, 10.0), (3 * MBIT, 10.0), (1 * MBIT, 10.0)], delay_s=0.025, loss=0.0
            ),
            "opennetlab",
        ),
    ),
    Recipe(
        "steps/staircase-1to16mbit.json",
        f"{GENERATED}: steps 1/2/4/8/16 Mbit/s, 5 s each, 20 ms one-way",
        OWN_LICENSE,
        _write(
            lambda: steps([(r * MBIT, 5.0) for r in (1, 2, 4, 8, 16)], delay_s=0.020, loss=0.0),
            "opennetlab",
        ),
    ),
    Recipe(
        "outages/5mbit-2s-outage.json",
        f"{GENERATED}: 5 Mbit/s 10 s, 0 for 2 s, 5 Mbit/s 8 s, 20 ms one-way",
        OWN_LICENSE,
        _write(
            lambda: steps([(5 * MBIT, 10.0), (0.0, 2.0), (5 * MBIT, 8.0)], delay_s=0.020, loss=0.0),
            "opennetlab",
        ),
    ),
    Recipe(
        "outages/5mbit-2s-outage-mm.trace",
        f"{GENERATED}: the same outage as Mahimahi delivery opportunities",
        OWN_LICENSE,
        _write(lambda: steps([(5 * MBIT, 10.0), (0.0, 2.0), (5 * MBIT, 8.0)]), "mahimahi"),
    ),
    Recipe(
        "outages/dropouts.json",
        f"{GENERATED}: 8 Mbit/s with outages of 0.5, 1 and 3 s (25 ms one-way)",
        OWN_LICENSE,
        _write(
            lambda: steps(
                [
                    (8 * MBIT, 5.0),
                    (0.0, 0.5),
                    (8 * MBIT, 5.0),
                    (0.0, 1.0),
                    (4 * MBIT, 5.0),
                    (0.0, 3.0),
                    (8 * MBIT, 5.0),
                ],
                delay_s=0.025,
                loss=0.0,
            ),
            "opennetlab",
        ),
    ),
)

README_HEAD = """\
# Bundled traces

Bandwidth traces shipped with netlab. A scenario names one by its short name:
the path below without `.json`/`.csv`/`.trace`/`.txt` (e.g.
`trace: cellular/verizon-lte-short.up` or `trace: opennetlab/medium/4g-3mbps`;
a leading `traces/` is accepted too); `netlab traces list` prints them,
`netlab traces info NAME` and `netlab traces plot NAME` show one. Formats are
detected from the content (Mahimahi delivery opportunities, OpenNetLab JSON,
Genet JSON).

This file and every derived trace are written by `python traces/build_corpus.py`
(from the repository root; `--check` verifies the corpus matches its recipes).
Real traces come from `tests/data/external` (verbatim copies of the public
files; see its README); nothing here was
downloaded by the build. Synthetic traces say so in their name.

OpenNetLab's classes follow its challenge: **low** < 1 Mbit/s with ~55 ms RTT,
**medium** 2-3 Mbit/s with ~62 ms RTT, **high** > 10 Mbit/s with ~30 ms RTT.
OpenNetLab `rtt` is a round trip; netlab applies half of it per direction.
Mean rates use each format's rule (Mahimahi: opportunities x 1504 B x 8 /
period); p5/p95 are over 100 ms bins; "outage" is the share of 100 ms bins
with zero capacity.

| name | format | length | mean | p5 / p95 | outage | delay (one-way) | origin | licence |
|---|---|---|---|---|---|---|---|---|
"""


def _row(recipe: Recipe, path: Path) -> str:
    import numpy as np

    trace = load_trace(str(path))
    binned = trace.binned(0.1)
    rates = np.asarray(binned.rates_bps)
    p5, p95 = np.percentile(rates, [5, 95]) / MBIT
    outage = float((rates == 0).mean()) * 100
    delay = "-"
    if trace.delays_s is not None:
        low, high = min(trace.delays_s) * 1000, max(trace.delays_s) * 1000
        delay = f"{low:g} ms" if low == high else f"{low:g}-{high:g} ms"
    short = recipe.name
    for suffix in (".json", ".csv", ".trace", ".txt"):
        short = short.removesuffix(suffix)
    return (
        f"| `{short}` | {trace.source_format} | {trace.period_s:g} s "
        f"| {trace.mean_rate_bps() / MBIT:.2f} Mbit/s | {p5:.2f} / {p95:.2f} | {outage:.1f} % "
        f"| {delay} | {recipe.origin} | {recipe.license} |"
    )


def build(target: Path) -> None:
    rows = []
    for recipe in RECIPES:
        path = target / recipe.name
        path.parent.mkdir(parents=True, exist_ok=True)
        recipe.make(path)
        rows.append(_row(recipe, path))
    total = sum((target / r.name).stat().st_size for r in RECIPES)
    footer = f"\nTotal size: {total / 1e6:.2f} MB in {len(RECIPES)} files.\n"
    (target / "README.md").write_text(README_HEAD + "\n".join(rows) + "\n" + footer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="verify instead of writing")
    args = parser.parse_args(argv)
    if not EXTERNAL.is_dir():
        print(f"missing {EXTERNAL}: the real traces are copied from there", file=sys.stderr)
        return 2
    if not args.check:
        build(HERE)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        build(fresh)
        names = [r.name for r in RECIPES] + ["README.md"]
        _, mismatch, errors = filecmp.cmpfiles(fresh, HERE, names, shallow=False)
        for name in mismatch + errors:
            print(f"differs from its recipe: traces/{name}", file=sys.stderr)
        return 1 if mismatch or errors else 0


if __name__ == "__main__":
    sys.exit(main())
