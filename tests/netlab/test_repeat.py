"""``netlab run --repeat``: the spread of each flow's metrics over runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from netlab.errors import NetlabError
from netlab.repeat import run_repeated, spreads, summarize


def _result(rate: float, p95: float, score: float, faithful: bool) -> dict[str, object]:
    return {"flows": [{"id": "call", "metrics": {"recv_rate_bps": rate, "delay_p95_ms": p95,
                                                  "loss": 0.0, "note": "text is skipped"},
                       "scores": {"network": score}}],
            "fidelity": {"faithful": faithful}}


def test_spread_of_each_metric_and_score() -> None:
    rows = {r.metric: r for r in spreads([_result(3.0e6, 111.0, 46.3, True),
                                          _result(3.2e6, 138.0, 51.1, True),
                                          _result(3.1e6, 120.0, 50.9, False)])}
    assert set(rows) == {"recv_rate_bps", "delay_p95_ms", "loss", "score network"}
    rate = rows["recv_rate_bps"]
    assert rate.mean == pytest.approx(3.1e6)
    assert rate.sd == pytest.approx(1e5)
    assert rate.cv == pytest.approx(1e5 / 3.1e6)
    assert rows["loss"].cv is None  # a mean of zero has no CV


def test_repeat_runs_each_time_and_writes_the_spread(tmp_path: Path) -> None:
    made: list[Path] = []

    def once() -> Path:
        run_dir = tmp_path / f"lab-{len(made)}"
        run_dir.mkdir()
        (run_dir / "results.json").write_text(json.dumps(
            _result(3.0e6 + len(made) * 1e5, 120.0, 50.0, True)))
        made.append(run_dir)
        return run_dir

    console = Console(record=True, width=120)
    assert run_repeated(3, once, console) == made
    text = console.export_text()
    assert "spread over 3 runs (3 faithful)" in text
    assert "recv_rate_bps" in text and "3.2 %" in text  # 100 kbit/s over 3.1 Mbit/s
    saved = json.loads((tmp_path / "lab-0.repeat.json").read_text())
    assert saved["faithful"] == 3 and len(saved["runs"]) == 3
    with pytest.raises(NetlabError) as caught:
        run_repeated(0, once, console)
    assert caught.value.where == "--repeat" and caught.value.fix
    assert summarize(made[:1], Console(quiet=True))[0].sd == 0.0
