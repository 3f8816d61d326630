"""The tcp-mi5 contract at the endpoint: features, Aurora's reward and rate steps,
and the ``--policy`` option, on hand-made TCP_INFO samples (no agent, no socket)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from endpoints.agent_tcp import (
    ALPHA,
    OBS_SIZE,
    InfoSample,
    log_rate,
    monitor_interval,
    next_rate,
    parse_policy_option,
)
from endpoints.tcp.errors import TcpEndpointError
from endpoints.tcp.sender_app import build_parser, config_from_args
from endpoints.tcp.tcp_info import KERNEL_FIELD_NAMES

MS = 1_000_000


def _sample(t_ms: float, rtt_ms: float, *, min_rtt_ms: float = 20.0, acked: int = 0,
            sent: int = 0, retrans: int = 0) -> InfoSample:
    return InfoSample(round(t_ms * MS), round(rtt_ms * 1000), round(min_rtt_ms * 1000), acked,
                      sent, retrans)


def test_sample_reads_the_kernel_fields_by_name() -> None:
    values = [0] * len(KERNEL_FIELD_NAMES)
    for name, value in (("rtt_us", 25_000), ("min_rtt_us", 20_000), ("bytes_acked", 1000),
                        ("bytes_sent", 1500), ("bytes_retrans", 100)):
        values[KERNEL_FIELD_NAMES.index(name)] = value
    assert InfoSample.from_values(7, values) == InfoSample(7, 25_000, 20_000, 1000, 1500, 100)


def test_features_of_a_steady_interval() -> None:
    """10 Mbit/s acked over 100 ms at twice the minimum RTT, RTT flat, no retransmits."""
    acked = 125_000  # 10 Mbit/s for 100 ms
    samples = [_sample(0, 40, acked=0, sent=0)] + [
        _sample(t, 40, acked=acked * t // 100, sent=acked * t // 100) for t in range(10, 101, 10)]
    mi = monitor_interval(samples)
    assert mi is not None
    obs = mi.observation()
    assert len(obs) == OBS_SIZE
    gradient, latency_ratio, sending_ratio, delivery, retrans = obs
    assert gradient == pytest.approx(0.0, abs=1e-9)
    assert latency_ratio == pytest.approx(2.0)
    assert sending_ratio == pytest.approx(1.0)
    assert delivery == pytest.approx(math.log10(10e6 / 1e4) / 6)  # 10 kbit/s..10 Gbit/s
    assert retrans == 0.0
    assert mi.delivery_bps == pytest.approx(10e6)


def test_latency_gradient_is_the_rtt_slope() -> None:
    """RTT rising 10 ms over 100 ms: the queue grows, gradient 0.1 s/s."""
    samples = [_sample(t, 20 + t / 10, acked=t * 100, sent=t * 100) for t in range(0, 101, 10)]
    mi = monitor_interval(samples)
    assert mi is not None
    assert mi.observation()[0] == pytest.approx(0.1, rel=1e-6)
    rising_fast = [_sample(t, 20 + 20 * t, acked=t, sent=t) for t in range(0, 101, 10)]
    mi = monitor_interval(rising_fast)
    assert mi is not None and mi.observation()[0] == 10.0  # clipped to PCC-RL's bound


def test_sending_ratio_and_retransmits_follow_pcc_rl_rules() -> None:
    overshoot = monitor_interval([_sample(0, 30, acked=0, sent=0),
                                  _sample(100, 30, acked=50_000, sent=100_000,
                                          retrans=10_000)])
    assert overshoot is not None
    obs = overshoot.observation()
    assert obs[2] == pytest.approx(2.0)
    assert obs[4] == pytest.approx(0.1)
    nothing_acked = monitor_interval([_sample(0, 30), _sample(100, 30, sent=5000)])
    assert nothing_acked is not None and nothing_acked.observation()[2] == 1.0
    no_rtt = monitor_interval([_sample(0, 0, min_rtt_ms=0), _sample(100, 0, min_rtt_ms=0)])
    assert no_rtt is not None and no_rtt.observation()[1] == 1.0
    assert monitor_interval([_sample(5, 30), _sample(5, 30)]) is None  # no time passed


def test_reward_is_aurora_with_pcc_rl_scale() -> None:
    """10 × packets/s − 1000 × latency_s − 2000 × loss, × 0.001."""
    mi = monitor_interval([_sample(0, 50, acked=0, sent=0),
                           _sample(100, 50, acked=150_000, sent=160_000, retrans=8_000)])
    assert mi is not None
    packets_per_s = 150_000 / 1500 / 0.1  # 1000
    expected = 0.001 * (10 * packets_per_s - 1000 * 0.05 - 2000 * 0.05)
    assert mi.reward() == pytest.approx(expected)
    worse = monitor_interval([_sample(0, 100, acked=0, sent=0),
                              _sample(100, 100, acked=150_000, sent=160_000, retrans=8_000)])
    assert worse is not None and worse.reward() < mi.reward()  # more delay, less reward


def test_rate_steps_are_multiplicative_and_symmetric() -> None:
    up = next_rate(10e6, 1.0, low_bps=1e5, high_bps=1e9)
    assert up == pytest.approx(10e6 * (1 + ALPHA))
    down = next_rate(10e6, -1.0, low_bps=1e5, high_bps=1e9)
    assert down == pytest.approx(10e6 / (1 + ALPHA))
    assert next_rate(up, -1.0, low_bps=1e5, high_bps=1e9) == pytest.approx(10e6)  # undoes
    assert next_rate(10e6, 0.0, low_bps=1e5, high_bps=1e9) == 10e6
    assert next_rate(10e6, 8.0, low_bps=1e5, high_bps=1e9) == pytest.approx(12e6)  # α·8 = 0.2
    assert next_rate(1e9, 1.0, low_bps=1e5, high_bps=1e9) == 1e9  # clamped
    assert next_rate(1e5, -1.0, low_bps=1e5, high_bps=1e9) == 1e5
    assert next_rate(5e6, math.nan, low_bps=1e5, high_bps=1e9) == 5e6  # ignored


def test_log_rate_bounds() -> None:
    assert log_rate(0) == 0.0 and log_rate(1e4) == 0.0
    assert log_rate(1e7) == pytest.approx(0.5)
    assert log_rate(1e12) == 1.0


def test_policy_option_parsing() -> None:
    options = parse_policy_option("/run/a.sock?deadline=500us&fallback=keep&interval=10ms"
                                  "&flow=3&start=5Mbit&min=1Mbit&max=50Mbit")
    assert (options.socket, options.deadline_s, options.fallback, options.interval_s,
            options.flow) == ("/run/a.sock", 0.0005, "keep", 0.01, 3)
    assert (options.start_bps, options.min_bps, options.max_bps) == (5e6, 1e6, 50e6)
    defaults = parse_policy_option("/run/a.sock")
    assert (defaults.deadline_s, defaults.fallback, defaults.interval_s, defaults.start_bps) == (
        0.001, "kernel", 0.1, None)


@pytest.mark.parametrize("bad", [
    "", "?deadline=1ms", "/s?colour=red", "/s?fallback=gcc", "/s?interval=5ms",
    "/s?deadline=0ms", "/s?deadline=100ms&interval=100ms", "/s?flow=x", "/s?min=5Mbit&max=1Mbit",
    "/s?start=fast", "/s?deadline"])
def test_bad_policy_options_say_what_and_how(bad: str) -> None:
    with pytest.raises(TcpEndpointError) as caught:
        parse_policy_option(bad)
    assert caught.value.where is not None and caught.value.fix is not None


def test_sender_takes_policy_or_pacing_control_not_both(tmp_path: Path) -> None:
    base = ["--dest", "127.0.0.1:5201", "--duration", "1", "--log-dir", str(tmp_path)]
    parser = build_parser()
    config = config_from_args(parser.parse_args([*base, "--policy", "/run/a.sock?interval=50ms"]))
    assert config.policy == "/run/a.sock?interval=50ms"
    with pytest.raises(TcpEndpointError, match="both set the pacing rate"):
        config_from_args(parser.parse_args([*base, "--policy", "/run/a.sock",
                                            "--pacing-control", str(tmp_path / "c.sock")]))
    with pytest.raises(TcpEndpointError, match="unknown: speed"):
        config_from_args(parser.parse_args([*base, "--policy", "/run/a.sock?speed=1"]))
