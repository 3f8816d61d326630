"""The verdict: faithful or not, in the results-contract shape and in plain words."""

from __future__ import annotations

import json

import pytest

from shaping.fidelity import DirectionFidelity, FidelityThresholds, assess


def _good(direction: str) -> DirectionFidelity:
    return DirectionFidelity(
        "alice-bob", direction, timing_err_ms={"p50": 0.1, "p99": 0.3, "max": 0.9},
        capacity_mape=0.02, capacity_bins=100, capacity_bins_total=120,
        delay_err_ms={"p50": 0.05, "p99": 0.4}, loss_asked=0.01, loss_seen=0.011,
        loss_packets=50_000, changes=6000)


def test_a_faithful_run_has_the_contract_keys() -> None:
    report = assess([_good("a_to_b"), _good("b_to_a")])
    assert report["faithful"] is True
    assert set(report) >= {"faithful", "links", "thresholds", "verdicts"}
    link = report["links"][0]
    for key in ("link", "direction", "timing_err_ms", "capacity_mape", "delay_err_ms",
                "loss_asked", "loss_seen"):
        assert key in link
    assert set(link["timing_err_ms"]) == {"p50", "p99", "max"}
    assert report["thresholds"]["capacity_mape"] == 0.05
    assert report["thresholds"]["delay_err_ms_p99"] == 1.0
    assert report["thresholds"]["timing_err_ms_p99"] == 2.0
    assert report["verdicts"][0].startswith("Faithful")
    json.dumps(report)  # goes into fidelity.json as is


def test_a_run_over_the_thresholds_is_not_faithful_and_says_why() -> None:
    late = _good("a_to_b")
    late.timing_err_ms = {"p50": 0.5, "p99": 3.4, "max": 35.0}
    loose = _good("b_to_a")
    loose.capacity_mape = 0.072
    loose.loss_seen = 0.03
    report = assess([late, loose])
    assert report["faithful"] is False
    text = "\n".join(report["verdicts"])
    assert report["verdicts"][0].startswith("NOT faithful")
    assert "link alice-bob (a_to_b): capacity changes took effect 3.40 ms late at p99" in text
    assert "(limit 2 ms" in text
    assert "missed the trace's capacity by 7.2 %" in text
    assert "3.0 % of packets were lost where 1.0 % was asked" in text


def test_thresholds_are_configurable_and_unmeasured_metrics_are_named() -> None:
    entry = _good("a_to_b")
    entry.delay_err_ms = {"p50": 0.5, "p99": 1.5}
    assert assess([entry])["faithful"] is False
    assert assess([entry], FidelityThresholds(delay_err_p99_ms=2.0))["faithful"] is True
    idle = DirectionFidelity("x-y", "a_to_b", capacity_bins_total=10)
    report = assess([idle])
    assert report["faithful"] is True
    assert any("never backlogged" in v for v in report["verdicts"])
    with pytest.raises(ValueError, match="timing_p99_ms"):
        FidelityThresholds(timing_p99_ms=-1)


def test_loss_tolerance_allows_binomial_noise() -> None:
    entry = _good("a_to_b")
    entry.loss_packets = 1000
    entry.loss_seen = 0.02  # 1 % asked: 3 sigma over 1000 packets is 0.94 %, plus 0.5 %
    assert assess([entry])["faithful"] is True
    entry.loss_seen = 0.03
    assert assess([entry])["faithful"] is False
