"""A scenario's RTC and TCP flows run as processes in their hosts and end
up in results.json with metrics, scores and time series."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.cli.runs import netlab_run
from tests.lab.scenarios import unique_lab


def test_rtc_with_tcp_cross_traffic(tmp_path: Path) -> None:
    scenario = tmp_path / "flows.yaml"
    scenario.write_text(f"""
name: {unique_lab("fl")}
duration: 6s
hosts: [alice, router, bob]
links:
  - endpoints: [alice, router]
    rate: 50Mbit
  - endpoints: [router, bob]
    rate: 4Mbit
    queue: 40pkt
flows:
  - kind: rtc
    from: alice
    to: bob
    estimator: fixed:1Mbit
  - kind: tcp
    from: bob
    to: alice
    cc: bbr
  - kind: tcp
    from: alice
    to: bob
    cc: cubic
    start: 2s
""")
    run_dir, results = netlab_run(scenario, tmp_path / "runs", plots=True)
    flows = {f["id"]: f for f in results["flows"]}
    assert set(flows) == {"rtc-0", "tcp-1", "tcp-2"}
    assert {p.name for p in (run_dir / "plots").iterdir()} >= {"rtc-0.png", "tcp-2.png"}
    rtc = flows["rtc-0"]
    assert rtc["estimator"] == "fixed:1Mbit"
    # the fixed estimate reaches the sender as REMB; what arrives depends on the
    # cubic flow's share of the queue, so only the order of magnitude is pinned
    assert 0.25e6 < rtc["metrics"]["recv_rate_bps"] < 1.3e6, rtc["metrics"]
    assert rtc["metrics"]["delay_p95_ms"] is not None
    assert 0 <= rtc["scores"]["network"] <= 100
    reverse, cross = flows["tcp-1"], flows["tcp-2"]
    assert reverse["cc"] == "bbr" and cross["cc"] == "cubic"
    assert reverse["metrics"]["recv_rate_bps"] > 2e6  # the reverse direction is free
    assert 1e6 < cross["metrics"]["recv_rate_bps"] < 4e6  # shares 4 Mbit/s with the call
    rows = list(csv.DictReader((run_dir / "timeseries" / "rtc-0.csv").open()))
    assert len(rows) >= 50 and rows[10]["capacity_bps"] == "4e+06"
    assert any(float(r["recv_rate_bps"] or 0) > 0 for r in rows)
    assert max(float(r["target_bps"] or 0) for r in rows) == 1e6  # the sender followed REMB


def test_a_flow_rate_is_over_its_own_start_to_stop(tmp_path: Path) -> None:
    """A call that ran 3 s of a 6 s run reports what it carried while it ran."""
    scenario = tmp_path / "window.yaml"
    scenario.write_text(f"""
name: {unique_lab("fw")}
duration: 6s
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    rate: 10Mbit
flows:
  - kind: rtc
    from: alice
    to: bob
    estimator: fixed:800kbit
    start: 1s
    stop: 4s
""")
    run_dir, results = netlab_run(scenario, tmp_path / "runs")
    assert not (run_dir / "plots").exists()  # --no-plots
    (flow,) = results["flows"]
    # It starts at 300 kbit/s and its encoder needs about a second to reach the fixed
    # 800 kbit/s (measured 0.55 Mbit/s over its 3 s); over the whole 6 s it would read
    # half of that.
    assert 0.42e6 < flow["metrics"]["recv_rate_bps"] < 0.95e6, flow["metrics"]
