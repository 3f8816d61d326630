"""Mode strings, the token bucket and the fixed sampling grid."""

from __future__ import annotations

import pytest

from endpoints.tcp.errors import TcpEndpointError
from endpoints.tcp.modes import MIN_WRITE_BYTES, SendMode, TokenBucket, parse_mode, parse_rate_bps
from endpoints.tcp.sender_app import _advance


def test_parse_modes() -> None:
    assert parse_mode("bulk") == SendMode("bulk")
    assert parse_mode("rate:5Mbit") == SendMode("rate", rate_bps=5e6)
    assert parse_mode("rate:500kbit").rate_bps == 5e5
    assert parse_mode("onoff:1,2") == SendMode("onoff", on_s=1.0, off_s=2.0)
    assert parse_mode("onoff:200ms,0.3s,1Gbit") == SendMode("onoff", 1e9, 0.2, 0.3)
    assert parse_rate_bps("64000", where="x") == 64000.0


@pytest.mark.parametrize("text", ["", "fast", "rate:", "rate:5MB", "rate:-1Mbit", "onoff:1",
                                  "onoff:0,1", "bulk:1", "onoff:1,1,1,1"])
def test_bad_modes_say_where_and_how(text: str) -> None:
    with pytest.raises(TcpEndpointError) as info:
        parse_mode(text)
    assert info.value.where == "--mode"
    assert info.value.fix


def test_onoff_schedule() -> None:
    mode = parse_mode("onoff:0.3,0.2")
    ms = 1_000_000
    assert mode.is_on(0) and mode.is_on(299 * ms)
    assert not mode.is_on(300 * ms) and not mode.is_on(499 * ms)
    assert mode.is_on(500 * ms)
    assert mode.next_switch_ns(100 * ms) == 300 * ms
    assert mode.next_switch_ns(350 * ms) == 500 * ms
    assert mode.next_switch_ns(500 * ms) == 800 * ms
    assert parse_mode("bulk").next_switch_ns(5) is None


def test_token_bucket_allows_the_rate_and_no_burst() -> None:
    bucket = TokenBucket(8e6, now_ns=0)  # 1 MB/s
    assert bucket.allowance() == 0  # starts empty
    written = 0
    for t_ms in range(1, 1001):
        bucket.refill(t_ms * 1_000_000)
        allow = bucket.allowance()
        bucket.consume(allow)
        written += allow
    assert 0.99e6 <= written <= 1e6
    bucket.refill(10 * 1_000_000_000)  # a long pause
    assert bucket.allowance() <= 20_000  # 20 ms at 1 MB/s, not 9 s worth
    slow = TokenBucket(10_000, now_ns=0)
    assert slow.min_write == MIN_WRITE_BYTES
    assert slow.wait_ns() == pytest.approx(MIN_WRITE_BYTES / 1250 * 1e9, rel=1e-6)


def test_sampling_grid_skips_missed_deadlines_without_drift() -> None:
    assert _advance(0, 10, 3) == (10, 0)
    assert _advance(0, 10, 10) == (20, 1)
    assert _advance(0, 10, 35) == (40, 3)
