"""Per-flow plots from run directories shaped like the lab writes them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from netlab.errors import NetlabError
from netlab.run.plots import (
    CAPACITY_COLOUR,
    ESTIMATE_COLOUR,
    RECV_COLOUR,
    figure_size_px,
    flow_figure,
    load_results,
    plot_run,
    read_timeseries,
)
from tests.netlab.run_fixtures import HEADER, RunSpec, make_run_dir, write_csv

#: An estimator that lets the queue fill and overflow: its flow has loss.
AGGRESSIVE = RunSpec(estimator="policy", growth_per_s=0.6, backoff=0.9, backoff_queue_ms=500,
                     seed=8)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    return width, height


def colour_pixels(path: Path, colour: str) -> int:
    """Pixels within a small distance of ``colour`` (antialiasing blends edges)."""
    image = imread(path)[:, :, :3]
    distance = np.abs(image - np.array(to_rgb(colour))).sum(axis=2)
    return int(np.count_nonzero(distance < 0.06))


def test_plot_run_draws_one_readable_png_per_flow(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, AGGRESSIVE)
    results = load_results(run_dir)
    assert results["flows"][0]["metrics"]["loss"] > 0  # the fixture gives the RTC flow loss

    written = plot_run(run_dir)

    assert [p.name for p in written] == [f"{f['id']}.png" for f in results["flows"]]
    assert all(p.parent == run_dir / "plots" for p in written)
    rtc, tcp, probe = written
    # rtc: rate, delay, loss, estimate panels; tcp and probe: rate and delay
    assert png_size(rtc) == figure_size_px(4)
    assert png_size(tcp) == figure_size_px(2)
    assert png_size(probe) == figure_size_px(2)
    assert png_size(rtc)[1] > png_size(tcp)[1]
    for path in written:
        assert path.stat().st_size > 20_000, f"{path} looks empty"
        assert colour_pixels(path, RECV_COLOUR) > 500, f"{path}: no receive-rate line"
        assert colour_pixels(path, CAPACITY_COLOUR) > 200, f"{path}: no capacity line"
    # only the flow with an estimate has the estimate line
    assert colour_pixels(rtc, ESTIMATE_COLOUR) > 500
    assert colour_pixels(tcp, ESTIMATE_COLOUR) == 0


def test_titles_units_and_panels_say_what_is_plotted(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, AGGRESSIVE)
    results = load_results(run_dir)
    rtc_flow, tcp_flow, _ = results["flows"]

    fig = flow_figure(read_timeseries(run_dir / "timeseries" / "rtc-alice-bob.csv"), rtc_flow,
                      results)
    title = fig.get_suptitle()
    for word in ("rtc-alice-bob", "rtc", "policy", "lte-rtc", "alice → bob", "Mbit/s",
                 "network score"):
        assert word in title
    axes = fig.get_axes()
    assert [ax.get_ylabel() for ax in axes] == ["rate (Mbit/s)", "delay (ms)", "loss (%)",
                                               "rate (Mbit/s)"]
    assert axes[-1].get_xlabel() == "time since run start (s)"
    assert axes[0].get_xlim() == (0.0, 30.0)
    legend_box = axes[0].get_legend()
    assert legend_box is not None
    legend = [text.get_text() for text in legend_box.get_texts()]
    assert {"capacity", "target (sender)", "receive rate", "outage (capacity 0)"} <= set(legend)
    # the outage (capacity 0 from 14 s to 15.5 s) is shaded where it happened
    spans = [p for p in axes[0].patches if p.get_label() == "outage (capacity 0)"]
    assert len(spans) == 1
    corners = spans[0].get_patch_transform().transform(spans[0].get_path().vertices)
    assert corners[:, 0].min() == pytest.approx(14.0)
    assert corners[:, 0].max() == pytest.approx(15.5)

    fig = flow_figure(read_timeseries(run_dir / "timeseries" / "tcp-alice-bob.csv"), tcp_flow,
                      results)
    assert "tcp (cubic)" in fig.get_suptitle() and "RTT p95" in fig.get_suptitle()
    delay_texts = [t.get_text() for t in fig.get_axes()[1].texts]
    assert any("no one-way delay" in t and "RTT" in t for t in delay_texts)


def test_slow_flows_are_plotted_in_kbit(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, RunSpec(with_tcp=False, with_probe=False))
    csv_path = run_dir / "timeseries" / "rtc-alice-bob.csv"
    series = read_timeseries(csv_path)
    slow = {name: getattr(series, name) / 10.0 for name in HEADER[1:]}
    slow["delay_ms"], slow["loss"] = series.delay_ms, series.loss
    write_csv(csv_path, series.t_s, slow)
    results = load_results(run_dir)
    fig = flow_figure(read_timeseries(csv_path), results["flows"][0], results)
    assert fig.get_axes()[0].get_ylabel() == "rate (kbit/s)"


def test_empty_cells_read_as_not_applicable(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(",".join(HEADER) + "\n0.0,1000,,0,,,5000000\n0.1,2000,12.5,,,,\n")
    series = read_timeseries(path)
    assert series.t_s.tolist() == [0.0, 0.1]
    assert series.recv_rate_bps.tolist() == [1000.0, 2000.0]
    assert np.isnan(series.delay_ms[0]) and series.delay_ms[1] == 12.5
    assert not series.has("estimate_bps") and series.has("capacity_bps")


@pytest.mark.parametrize(("text", "where", "what"), [
    ("t_s,recv_rate_bps\n0,1\n", ":1", "lacks the column"),
    (",".join(HEADER) + "\n0.0,fast,,,,,\n", ":2", "not a number"),
    (",".join(HEADER) + "\n0.0,1\n", ":2", "cells"),
    ("", "", "empty"),
])
def test_broken_timeseries_say_where(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = tmp_path / "f.csv"
    path.write_text(text)
    with pytest.raises(NetlabError) as caught:
        read_timeseries(path)
    assert what in caught.value.what
    assert caught.value.where is not None and caught.value.where.startswith(str(path))
    assert caught.value.where.endswith(where) and caught.value.fix


def test_flows_without_a_timeseries_are_skipped(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    (run_dir / "timeseries" / "tcp-alice-bob.csv").unlink()
    assert [p.name for p in plot_run(run_dir)] == ["rtc-alice-bob.png", "probe-router-bob-up.png"]


def test_run_directory_errors_name_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(NetlabError, match="does not exist") as caught:
        plot_run(tmp_path / "nope")
    assert caught.value.where == str(tmp_path / "nope")

    run_dir = make_run_dir(tmp_path / "runs")
    with pytest.raises(NetlabError, match="not a directory") as caught:
        plot_run(run_dir / "results.json")
    assert caught.value.fix is not None and "directory that holds it" in caught.value.fix

    with pytest.raises(NetlabError, match=r"no results\.json") as caught:
        plot_run(tmp_path / "runs")  # the parent of run directories
    assert caught.value.fix is not None and run_dir.name in caught.value.fix

    (run_dir / "results.json").write_text('{"flows": [')
    with pytest.raises(NetlabError, match="not valid JSON") as caught:
        plot_run(run_dir)
    assert caught.value.where is not None and caught.value.where.startswith(
        f"{run_dir / 'results.json'}:1:")

    (run_dir / "results.json").write_text(json.dumps({"scenario": {}}))
    with pytest.raises(NetlabError, match="no 'flows'"):
        plot_run(run_dir)
