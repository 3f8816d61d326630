"""Receiver-side estimators: AlphaRTC plugins run unchanged, fixed and GCC."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from endpoints.rtc.errors import PluginError
from endpoints.rtc.estimators import (
    FixedEstimator,
    GccEstimator,
    PluginEstimator,
    ReceiverEstimator,
    estimator_from_spec,
    load_plugin,
)
from endpoints.rtc.rtp import RtpPacket
from endpoints.rtc.stats import ALPHARTC_STATS_KEYS, ArrivalRecord

DATA = Path(__file__).parent / "data"


def stats_stream(rate_bps: float, seconds: float, *, loss_every: int = 0,
                 payload: int = 1000) -> list[dict[str, int]]:
    """AlphaRTC stats for packets at ``rate_bps`` arriving 20 ms after sending."""
    out = []
    header = RtpPacket(96, 0, 0, 1, payload=bytes(payload))
    header.set_transport_sequence_number(0)
    header.set_abs_send_time(0)
    size_bits = header.size * 8
    interval_ms = size_bits / rate_bps * 1000
    for i in range(int(seconds * 1000 / interval_ms)):
        if loss_every and i % loss_every == loss_every - 1:
            continue
        header.sequence_number = i & 0xFFFF
        record = ArrivalRecord.from_packet(header, send_time_ms=i * interval_ms,
                                           arrival_time_ms=i * interval_ms + 20)
        out.append(record.alphartc_stats())
    return out


def test_opennetlab_example_runs_unchanged() -> None:
    estimator = load_plugin(DATA / "BandwidthEstimator.py")
    assert isinstance(estimator, ReceiverEstimator)
    for stats in stats_stream(500_000, 0.2):
        estimator.report_states(stats)
    # The example alternates 1e6 and 2e6 as floats; AlphaRTC int()s them, so do we.
    answers = [estimator.get_estimated_bandwidth() for _ in range(4)]
    assert answers == [1_000_000, 2_000_000, 1_000_000, 2_000_000]
    assert all(type(a) is int for a in answers)


def test_plugin_with_sibling_package_and_relative_files(tmp_path: Path) -> None:
    cwd = os.getcwd()
    estimator = load_plugin(DATA / "rate_plugin" / "BandwidthEstimator.py")
    assert os.getcwd() == cwd, "the working directory is restored after construction"
    stream = stats_stream(800_000, 2.0)
    for stats in stream:
        estimator.report_states(stats)
    assert isinstance(estimator, PluginEstimator)
    assert estimator.estimator.keys_seen == set(ALPHARTC_STATS_KEYS)
    assert estimator.get_estimated_bandwidth() == pytest.approx(800_000, rel=0.03)


@pytest.mark.parametrize(("source", "message"), [
    ("raise RuntimeError('boom')\n", "importing the plugin raised RuntimeError"),
    ("x = 1\n", "defines no class Estimator"),
    ("class Estimator:\n    def report_states(self, s): pass\n", "lacks get_estimated_bandwidth"),
    ("class Estimator:\n    def __init__(self, required): pass\n"
     "    def report_states(self, s): pass\n    def get_estimated_bandwidth(self): return 1\n",
     "Estimator() raised TypeError"),
])
def test_broken_plugins_say_what_where_and_how(tmp_path: Path, source: str, message: str) -> None:
    plugin = tmp_path / "BandwidthEstimator.py"
    plugin.write_text(source)
    with pytest.raises(PluginError) as info:
        load_plugin(plugin)
    assert message in info.value.what
    assert info.value.where == str(plugin.resolve())
    assert info.value.fix


def test_bad_answers_are_reported(tmp_path: Path) -> None:
    plugin = tmp_path / "BandwidthEstimator.py"
    plugin.write_text("class Estimator:\n    def report_states(self, s): raise KeyError(s)\n"
                      "    def get_estimated_bandwidth(self): return float('nan')\n")
    estimator = load_plugin(plugin)
    with pytest.raises(PluginError, match="report_states raised KeyError"):
        estimator.report_states({"ssrc": 1})
    with pytest.raises(PluginError, match="returned nan"):
        estimator.get_estimated_bandwidth()


def test_missing_plugin_file() -> None:
    with pytest.raises(PluginError) as info:
        load_plugin("/nonexistent/BandwidthEstimator.py")
    assert "does not exist" in info.value.what


def test_fixed_estimator_and_specs() -> None:
    fixed = estimator_from_spec("fixed:1500000")
    assert isinstance(fixed, FixedEstimator)
    fixed.report_states(stats_stream(100_000, 0.1)[0])
    assert fixed.get_estimated_bandwidth() == 1_500_000
    assert isinstance(estimator_from_spec("gcc"), GccEstimator)
    assert isinstance(estimator_from_spec(f"plugin:{DATA / 'BandwidthEstimator.py'}"),
                      PluginEstimator)
    for bad in ("fixed:abc", "fixed:-5", "kalman", "plugin:"):
        with pytest.raises(PluginError):
            estimator_from_spec(bad)


def test_receiver_side_gcc_grows_without_loss_and_backs_off_with_loss() -> None:
    clean = GccEstimator(start_bitrate_bps=500_000)
    stream = stats_stream(500_000, 3.0)
    for i, stats in enumerate(stream):
        clean.report_states(stats)
        if i % 10 == 9:
            clean.get_estimated_bandwidth()
    assert clean.get_estimated_bandwidth() > 550_000
    lossy = GccEstimator(start_bitrate_bps=500_000)
    for i, stats in enumerate(stats_stream(500_000, 3.0, loss_every=5)):  # 20 % loss
        lossy.report_states(stats)
        if i % 10 == 9:
            lossy.get_estimated_bandwidth()
    assert lossy.get_estimated_bandwidth() < 400_000
