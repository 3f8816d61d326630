"""The Genet-style generator: deterministic by seed, inside its parameters."""

from __future__ import annotations

import pytest

from shaping.traces import GenetParams, TraceError, format_trace, generate, parse_trace, steps

BASE = GenetParams(
    min_bw_bps=1e6,
    max_bw_bps=10e6,
    duration_s=30.0,
    change_interval_s=0.5,
    delay_s=0.025,
    queue_packets=80,
    loss=0.01,
    delay_noise_s=0.004,
    seed=42,
)


def test_same_seed_same_trace_different_seed_different_trace() -> None:
    first = generate(BASE)
    assert generate(BASE) == first
    assert format_trace(generate(BASE), "genet") == format_trace(first, "genet")
    other = generate(GenetParams(**{**BASE.__dict__, "seed": 43}))
    assert other.rates_bps != first.rates_bps
    assert other.times_s == first.times_s


@pytest.mark.parametrize("seed", range(10))
def test_parameters_are_respected(seed: int) -> None:
    params = GenetParams(**{**BASE.__dict__, "seed": seed})
    trace = generate(params)
    assert trace.period_s == 30.0
    assert trace.segment_count == 60  # one draw per change interval
    assert all(t == pytest.approx(i * 0.5) for i, t in enumerate(trace.times_s))
    assert all(1e6 <= r <= 10e6 for r in trace.rates_bps)
    assert len(set(trace.rates_bps)) > 50  # the values really vary
    assert trace.delays_s == (0.025,) * 60
    assert trace.losses == (0.01,) * 60
    assert trace.queue_packets == 80
    assert trace.delay_noise_s == 0.004
    assert not trace.loop


def test_uniform_draws_cover_the_range() -> None:
    rates = generate(
        GenetParams(min_bw_bps=2e6, max_bw_bps=4e6, duration_s=200.0, change_interval_s=0.1, seed=1)
    ).rates_bps
    assert min(rates) < 2.1e6 and max(rates) > 3.9e6
    assert sum(rates) / len(rates) == pytest.approx(3e6, rel=0.03)


def test_interval_not_dividing_duration_and_constant_trace() -> None:
    trace = generate(
        GenetParams(min_bw_bps=1e6, max_bw_bps=2e6, duration_s=10.0, change_interval_s=3.0, seed=5)
    )
    assert trace.times_s == (0.0, 3.0, 6.0, 9.0)
    assert list(trace.segments())[-1].duration_s == pytest.approx(1.0)
    constant = generate(
        GenetParams(min_bw_bps=1e6, max_bw_bps=2e6, duration_s=10.0, change_interval_s=0.0, seed=5)
    )
    assert constant.segment_count == 1


def test_generated_trace_survives_genet_json() -> None:
    trace = generate(BASE)
    again = parse_trace(format_trace(trace, "genet"))
    assert again.rates_bps == pytest.approx(trace.rates_bps, rel=1e-12)
    assert again.queue_packets == 80 and again.delay_noise_s == pytest.approx(0.004)


@pytest.mark.parametrize(
    "change",
    [
        {"min_bw_bps": 5e6, "max_bw_bps": 1e6},
        {"min_bw_bps": -1.0},
        {"min_bw_bps": 0.0, "max_bw_bps": 0.0},
        {"duration_s": 0.0},
        {"change_interval_s": -1.0},
        {"loss": 1.5},
        {"delay_s": -0.01},
        {"queue_packets": 0},
        {"delay_noise_s": float("nan")},
    ],
)
def test_bad_parameters_are_refused_with_a_fix(change: dict[str, float]) -> None:
    with pytest.raises(TraceError) as caught:
        generate(GenetParams(**{**BASE.__dict__, **change}))
    assert caught.value.fix


def test_steps_and_outages() -> None:
    trace = steps([(10e6, 10.0), (0.0, 2.0), (5e6, 8.0)], delay_s=0.02)
    assert trace.times_s == (0.0, 10.0, 12.0)
    assert trace.period_s == 20.0
    assert trace.capacity_at(11.0) == 0.0
    assert trace.outage_fraction() == pytest.approx(0.1)
    assert trace.delays_s == (0.02,) * 3
    with pytest.raises(TraceError, match="zero length"):
        steps([(1e6, 0.0)])
