"""The statistics and the report of ``netlab vagrant compare``, without VMs.

The t quantiles are checked against published tables (NIST/SEMATECH e-Handbook
of Statistical Methods, table 1.3.6.7.2), Welch's interval against the worked
formula, and the report against results files written as runs write them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from netlab.intervals import mean_interval, t_cdf, t_quantile, welch_difference
from netlab.vagrant import agreement
from netlab.vagrant.compare import write_report

# two-sided 95 % (upper 0.975) critical values of Student's t, from the NIST table
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 10: 2.228, 30: 2.042, 100: 1.984}


@pytest.mark.parametrize(("df", "expected"), sorted(T_975.items()))
def test_t_quantile_matches_the_table(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=5e-4)
    assert t_cdf(expected, df) == pytest.approx(0.975, abs=1e-4)


def test_t_quantile_between_whole_degrees_and_towards_normal() -> None:
    # Welch's degrees of freedom are rarely whole: the quantile falls between neighbours
    assert T_975[3] < t_quantile(0.975, 2.5) < T_975[2]
    assert t_quantile(0.975, 1e6) == pytest.approx(1.95996, abs=1e-4)  # the normal's
    assert t_cdf(0.0, 7) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)


def test_mean_interval_is_student_t() -> None:
    interval = mean_interval([1.0, 2.0, 3.0])
    assert (interval.n, interval.mean, interval.sd) == (3, 2.0, 1.0)
    half = 4.302653 / math.sqrt(3)
    assert interval.low == pytest.approx(2.0 - half, abs=1e-5)
    assert interval.high == pytest.approx(2.0 + half, abs=1e-5)
    one = mean_interval([5.0])
    assert (one.low, one.high, one.half_width) == (None, None, None)


def test_welch_difference_by_the_formula() -> None:
    a, b = mean_interval([10.0, 11.0, 12.0]), mean_interval([12.0, 13.0, 14.0, 15.0])
    d = welch_difference(a, b)
    va, vb = 1.0 / 3, (5.0 / 3) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    assert d.value == 2.5
    assert d.df == pytest.approx(df)  # 4.959...
    half = t_quantile(0.975, df) * math.sqrt(va + vb)
    assert (d.low, d.high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    assert d.relative == pytest.approx(2.5 / 11)
    assert d.relative_low == pytest.approx((2.5 - half) / 11)
    # equal spreads and sizes: Welch's df is the pooled 2(n - 1)
    same = welch_difference(mean_interval([1.0, 2.0, 3.0]), mean_interval([2.0, 3.0, 4.0]))
    assert same.df == pytest.approx(4.0)
    # no spread on either side: an interval of zero width, not a division by zero
    flat = welch_difference(mean_interval([2.0, 2.0]), mean_interval([3.0, 3.0]))
    assert (flat.low, flat.high, flat.relative) == (1.0, 1.0, 0.5)
    # a zero reference mean has no relative difference
    assert welch_difference(mean_interval([0.0, 0.0]), mean_interval([1.0, 1.0])).relative is None


def _results(flows: dict[str, dict[str, float | None]], faithful: bool = True) -> dict[str, Any]:
    entries = []
    for flow_id, metrics in flows.items():
        kind = "tcp" if flow_id.startswith("tcp") else "rtc"
        entry: dict[str, Any] = {"id": flow_id, "kind": kind, "metrics": metrics}
        if kind == "tcp":
            entry["cc"] = "cubic"
        else:
            entry["estimator"] = "fixed:1.5Mbit"
        entries.append(entry)
    return {"flows": entries, "fidelity": {"faithful": faithful, "verdicts": [
        "Faithful: ..." if faithful else "NOT faithful: 1 problem(s) found"],
        "machine": {"causes": [] if faithful else ["the CPUs were 97 % busy over the run"]}}}


def _runs(rates: list[float], delays: list[float]) -> list[dict[str, Any]]:
    return [_results({"rtc-fixed": {"recv_rate_bps": r, "delay_p95_ms": d, "loss": 0.1},
                      "tcp-1": {"recv_rate_bps": 2e6 + r, "delay_p95_ms": None,
                                "rtt_p95_ms": 700.0 + d}})
            for r, d in zip(rates, delays, strict=True)]


def test_verdicts_judge_the_whole_interval() -> None:
    ns = _runs([1.00e6, 1.01e6, 0.99e6], [440.0, 445.0, 435.0])
    close = _runs([1.01e6, 1.00e6, 1.02e6], [441.0, 446.0, 439.0])
    far = _runs([1.20e6, 1.21e6, 1.19e6], [300.0, 302.0, 298.0])
    noisy = _runs([0.7e6, 1.3e6, 1.0e6], [300.0, 600.0, 450.0])
    by = {(r.flow, r.metric): r for r in agreement.compare_results(ns, close, tolerance=0.05)}
    assert by[("rtc-fixed", "recv_rate_bps")].verdict == "within"
    assert by[("rtc-fixed", "delay_p95_ms")].verdict == "within"
    assert ("tcp-1", "delay_p95_ms") not in by  # None on every run: not a metric here
    assert by[("tcp-1", "rtt_p95_ms")].label == "tcp cubic"
    rows = agreement.compare_results(ns, far, tolerance=0.05)
    assert {r.verdict for r in rows if r.flow == "rtc-fixed" and r.metric != "loss"} == {"outside"}
    shaky = agreement.compare_results(ns, noisy, tolerance=0.05)
    assert next(r for r in shaky if r.metric == "delay_p95_ms").verdict == "unclear"
    single = agreement.compare_results(ns[:1], close[:1], tolerance=0.05)
    assert {r.verdict for r in single} == {"no interval"}
    # the table's metrics first, in the declared order, then the rest by name
    assert [r.metric for r in rows if r.flow == "rtc-fixed"] == ["recv_rate_bps",
                                                                 "delay_p95_ms", "loss"]


def test_a_metric_missing_from_one_run_is_left_out() -> None:
    ns = _runs([1e6, 1e6], [400.0, 410.0])
    vm = _runs([1e6, 1e6], [400.0, 410.0])
    del vm[1]["flows"][0]["metrics"]["loss"]
    metrics = {r.metric for r in agreement.compare_results(ns, vm, tolerance=0.05)
               if r.flow == "rtc-fixed"}
    assert metrics == {"recv_rate_bps", "delay_p95_ms"}


def test_report_files_from_run_directories(tmp_path: Path) -> None:
    dirs: dict[str, list[Path]] = {"namespace": [], "vm": []}
    sides = {"namespace": _runs([1.00e6, 1.02e6, 0.98e6], [440.0, 444.0, 436.0]),
             "vm": _runs([1.01e6, 1.01e6, 1.00e6], [450.0, 452.0, 448.0])}
    for side, runs in sides.items():
        for index, results in enumerate(runs):
            if side == "vm":
                results["fidelity"] = _results({}, faithful=False)["fidelity"]
            run_dir = tmp_path / side / f"run-{index}"
            run_dir.mkdir(parents=True)
            (run_dir / "results.json").write_text(json.dumps(results))
            dirs[side].append(run_dir)
    with open(tmp_path / "console.txt", "w") as printed_to:
        write_report(tmp_path, "nltv-agree", dirs["namespace"], dirs["vm"], tolerance=0.05,
                     console=Console(file=printed_to, width=200, no_color=True),
                     timings={"total_s": 12.5})
    report = json.loads((tmp_path / "compare.json").read_text())
    assert report["confidence"] == 0.95 and report["tolerance"] == 0.05
    assert report["runs"]["vm"] == [str(d) for d in dirs["vm"]]
    assert report["fidelity"]["namespace"]["faithful"] == 3
    assert report["fidelity"]["vm"]["faithful"] == 0
    assert report["fidelity"]["vm"]["machine_causes"][0] == ["the CPUs were 97 % busy over the run"]
    assert report["timings_s"] == {"total_s": 12.5}
    delay = next(m for m in report["metrics"]
                 if m["flow"] == "rtc-fixed" and m["metric"] == "delay_p95_ms")
    assert set(delay) == {"flow", "label", "metric", "namespace", "vm", "difference", "verdict"}
    assert delay["namespace"]["n"] == 3 and delay["namespace"]["mean"] == pytest.approx(440.0)
    assert delay["difference"]["value"] == pytest.approx(10.0)
    assert delay["difference"]["percent"] == pytest.approx(10 / 440 * 100)
    low, high = delay["difference"]["ci95"]
    assert low < 10.0 < high
    assert delay["verdict"] in ("within", "unclear")
    table = (tmp_path / "compare.txt").read_text()
    row = next(line for line in table.splitlines() if "delay_p95_ms" in line)
    # namespace 440 ± t(2)·4/√3, VM 450 ± t(2)·2/√3, then +10 with Welch's interval, in %
    assert "440 ± 9.937" in row and "450 ± 4.968" in row and "+10 [" in row
    assert "+2.3 [" in row and "] %" in row
    assert "rtc-fixed (rtc fixed:1.5Mbit)" in table and "Mbit/s" in table
    printed = (tmp_path / "console.txt").read_text()
    assert "vm: 0 of 3 runs faithful" in printed and "97 % busy" in printed
