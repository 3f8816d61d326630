"""``netlab report``: per-run tables, the comparison and the Pantheon-style plot."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from netlab.cli.main import main
from netlab.errors import NetlabError
from netlab.run.report import (
    COMPARISON_DPI,
    COMPARISON_SIZE_IN,
    Run,
    comparison_figure,
    comparison_points,
    comparison_title,
    load_runs,
    print_report,
)
from tests.netlab.run_fixtures import RunSpec, make_run_dir
from tests.netlab.test_plots import AGGRESSIVE, png_size


def record(runs: list[Run], out: Path | None = None) -> tuple[str, Path | None]:
    """The report as plain text, wide enough that no column wraps."""
    console = Console(record=True, width=240, file=io.StringIO())
    plot = print_report(runs, console, out)
    return console.export_text(), plot


def test_one_run_shows_its_flows_metrics_scores_and_verdict(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    text, plot = record(load_runs([run_dir]))
    assert plot is None  # nothing to compare with
    flows = json.loads((run_dir / "results.json").read_text())["flows"]
    rtc = flows[0]
    for needle in ("rtc-alice-bob", "tcp-alice-bob", "probe-router-bob-up", "gcc", "cubic",
                   "alice → bob", f"{rtc['metrics']['recv_rate_bps'] / 1e6:.2f}",
                   f"{rtc['scores']['network']:.1f}", "RTT p50 ms", "freezes",
                   "fidelity: faithful", "Faithful: all 2 link directions", "replay log",
                   str(run_dir)):
        assert needle in text, f"{needle!r} missing from:\n{text}"
    assert "comparison" not in text


def test_an_unfaithful_run_says_so_and_why(tmp_path: Path) -> None:
    text, _ = record(load_runs([make_run_dir(tmp_path, RunSpec(faithful=False))]))
    assert "fidelity: NOT faithful" in text
    assert "capacity 14.0 % off" in text


def test_two_runs_are_compared_and_plotted(tmp_path: Path) -> None:
    base = make_run_dir(tmp_path, RunSpec())
    other = make_run_dir(tmp_path, AGGRESSIVE)
    runs = load_runs([base, other])
    out = tmp_path / "out" / "comparison.png"

    text, plot = record(runs, out)

    assert plot == out and out.is_file() and out.stat().st_size > 20_000
    assert png_size(out) == (round(COMPARISON_SIZE_IN[0] * COMPARISON_DPI),
                             round(COMPARISON_SIZE_IN[1] * COMPARISON_DPI))
    assert "comparison" in text and base.name in text and other.name in text
    before = json.loads((base / "results.json").read_text())["flows"][0]["metrics"]
    after = json.loads((other / "results.json").read_text())["flows"][0]["metrics"]
    change = (after["recv_rate_bps"] - before["recv_rate_bps"]) / before["recv_rate_bps"]
    assert f"{change * 100:+.0f} %" in text  # the RTC flow's rate, policy vs gcc

    points, skipped = comparison_points(runs)
    assert skipped == []
    assert len(points) == 6  # 2 runs × (rtc, tcp, probe)
    tcp = next(p for p in points if p.kind == "tcp")
    tcp_metrics = json.loads((base / "results.json").read_text())["flows"][1]["metrics"]
    assert tcp_metrics["delay_p95_ms"] is None  # TCP has no one-way delay: half its RTT
    assert tcp.delay_source == "rtt/2"
    assert tcp.delay_p95_ms == pytest.approx(tcp_metrics["rtt_p95_ms"] / 2)
    rtc = next(p for p in points if p.kind == "rtc" and p.run == other.name)
    assert rtc.controller == "policy" and rtc.delay_p95_ms == after["delay_p95_ms"]


def test_comparison_plot_is_pantheon_style(tmp_path: Path) -> None:
    runs = load_runs([make_run_dir(tmp_path, RunSpec()), make_run_dir(tmp_path, AGGRESSIVE)])
    points, _ = comparison_points(runs)
    fig = comparison_figure(points, title=comparison_title(runs))
    ax = fig.get_axes()[0]
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()  # lower delay to the right
    assert "one-way delay" in ax.get_xlabel() and "ms" in ax.get_xlabel()
    assert ax.get_ylabel() == "average throughput (Mbit/s)"
    assert "lte-rtc" in ax.get_title(loc="left") and "2 runs" in ax.get_title(loc="left")
    labels = [t for t in ax.texts if t.get_text()]
    assert len(labels) == len(points)
    assert {"rtc-alice-bob (gcc)", "rtc-alice-bob (policy)", "tcp-alice-bob (cubic)",
            "probe-router-bob-up"} <= {t.get_text() for t in labels}
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = [t.get_window_extent(renderer) for t in labels]
    for i, a in enumerate(boxes):  # no label covers another
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), "overlapping point labels"
    legend_box = ax.get_legend()
    assert legend_box is not None
    legend = {t.get_text() for t in legend_box.get_texts()}
    assert {runs[0].label, runs[1].label, "kind rtc", "kind tcp"} <= legend


def test_cli_report_prints_tables_and_writes_the_plot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = make_run_dir(tmp_path, RunSpec())
    second = make_run_dir(tmp_path, AGGRESSIVE)
    out = tmp_path / "report"
    assert main(["report", str(first), str(second), "--out", str(out), "--plots"]) == 0
    text = capsys.readouterr().out
    assert "rtc-alice-bob" in text and "fidelity: faithful" in text
    assert (out / "comparison.png").is_file()
    assert (first / "plots" / "rtc-alice-bob.png").is_file()
    assert (second / "plots" / "tcp-alice-bob.png").is_file()


def test_cli_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = make_run_dir(tmp_path, RunSpec())
    second = make_run_dir(tmp_path, RunSpec(faithful=False, seed=9))
    assert main(["report", str(first), str(second), "--json", "--out", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [run["faithful"] for run in data["runs"]] == [True, False]
    assert [f["id"] for f in data["runs"][0]["flows"]] == ["rtc-alice-bob", "tcp-alice-bob",
                                                           "probe-router-bob-up"]
    assert data["runs"][0]["flows"][0]["controller"] == "gcc"
    assert len(data["comparison"]["points"]) == 6
    assert data["comparison"]["plot"] == str(tmp_path / "comparison.png")
    assert (tmp_path / "comparison.png").is_file()


def test_cli_single_run_writes_no_comparison(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = make_run_dir(tmp_path)
    assert main(["report", str(run_dir), "--out", str(tmp_path / "o")]) == 0
    assert "comparison" not in capsys.readouterr().out
    assert not (tmp_path / "o").exists()


def test_cli_errors_say_what_where_and_fix(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "error: run directory" in err and "where:" in err and "fix:" in err

    run_dir = make_run_dir(tmp_path / "runs")
    assert main(["report", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert "no results.json" in err and str(run_dir) in err


def test_the_same_directory_twice_is_one_run(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    assert len(load_runs([run_dir, run_dir / "."])) == 1


def test_runs_with_the_same_name_get_distinct_labels(tmp_path: Path) -> None:
    a = make_run_dir(tmp_path / "a", name="run")
    b = make_run_dir(tmp_path / "b", name="run")
    assert [r.label for r in load_runs([a, b])] == ["a/run", "b/run"]


def test_load_runs_raises_for_a_file(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(NetlabError, match="not a directory"):
        load_runs([tmp_path / "x.txt"])
