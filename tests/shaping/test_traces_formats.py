"""Readers and writers: real files from other projects, round trips, format rules."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from shaping.traces import (
    MAHIMAHI_PACKET_BYTES,
    Trace,
    TraceError,
    detect_format,
    format_trace,
    load_trace,
    mahimahi,
    parse_trace,
    steps,
    write_trace,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTERNAL = REPO_ROOT / "tests" / "data" / "external"  # verbatim public files
PACKET_BITS = MAHIMAHI_PACKET_BYTES * 8


# -- real files from tests/data/external ---------------------------------------

# Mean rates from tests/data/external/README.md (Mbit/s, by the format's rule).
MAHIMAHI_TABLE = {
    "TMobile-LTE-short.up": 13.3,
    "TMobile-LTE-short.down": 16.7,
    "Verizon-LTE-short.up": 5.95,
    "Verizon-LTE-short.down": 5.03,
}


@pytest.mark.parametrize("name", sorted(MAHIMAHI_TABLE))
def test_external_mahimahi_mean_rates_match_readme(name: str) -> None:
    path = EXTERNAL / "mahimahi" / name
    trace = load_trace(str(path))
    assert trace.source_format == "mahimahi"
    assert trace.loop
    lines = path.read_text().split()
    assert trace.opportunities_ms is not None and len(trace.opportunities_ms) == len(lines)
    assert trace.period_s == pytest.approx(int(lines[-1]) / 1000)
    assert trace.period_s == pytest.approx(140, abs=0.1)
    assert trace.mean_rate_bps() / 1e6 == pytest.approx(MAHIMAHI_TABLE[name], rel=0.01)
    # Binning for the kernel backend keeps the bytes.
    assert trace.binned(0.1).mean_rate_bps() == pytest.approx(trace.mean_rate_bps(), rel=1e-9)


@pytest.mark.parametrize(
    "path", sorted((EXTERNAL / "opennetlab").glob("*.json")), ids=lambda p: p.name
)
def test_every_external_opennetlab_file_parses(path: Path) -> None:
    trace = load_trace(str(path))
    document = json.loads(path.read_text())
    pattern = document["uplink"]["trace_pattern"]
    assert trace.source_format == "opennetlab"
    assert trace.segment_count == len(pattern)
    assert trace.period_s == pytest.approx(sum(e["duration"] for e in pattern) / 1000)
    expected_bits = sum(e["duration"] / 1000 * e["capacity"] * 1000 for e in pattern)
    assert trace.total_bits() == pytest.approx(expected_bits)


def test_external_opennetlab_loss_and_rtt_patterns() -> None:
    loss = load_trace(str(EXTERNAL / "opennetlab" / "loss_trace_loss_pattern_2.json"))
    assert loss.losses == (0.0, 0.2)
    assert loss.capacity_at(0.7) == 1e6
    rtt = load_trace(str(EXTERNAL / "opennetlab" / "rtt_trace_rtt_pattern_2.json"))
    assert rtt.delays_s == (0.1, 0.2)  # one-way = rtt / 2
    assert rtt.segment_at(5.0).delay_s == 0.1  # loops: 5 s is 1 s into the second period
    assert rtt.segment_at(6.5).delay_s == 0.2
    outage = load_trace(str(EXTERNAL / "opennetlab" / "4G_3mbps.json"))
    assert outage.capacity_at(0.1) == 0.0  # "capacity": 0 lets nothing through


def test_external_mahimahi_round_trips_exactly(tmp_path: Path) -> None:
    source = EXTERNAL / "mahimahi" / "Verizon-LTE-short.up"
    trace = load_trace(str(source))
    copy = tmp_path / "copy.up"
    write_trace(trace, copy, "mahimahi")
    assert copy.read_bytes() == source.read_bytes()
    again = load_trace(str(copy))
    assert again.opportunities_ms == trace.opportunities_ms


# -- OpenNetLab semantics -------------------------------------------------------


def test_opennetlab_missing_loss_and_rtt_carry_forward() -> None:
    text = json.dumps(
        {
            "type": "video",
            "downlink": {},
            "uplink": {
                "trace_pattern": [
                    {"duration": 100, "capacity": 500},
                    {"duration": 100, "capacity": 600, "loss": 0.1, "rtt": 80},
                    {"duration": 100, "capacity": 700},
                    {"duration": 100, "capacity": 800, "rtt": 40, "jitter": 5},
                    {"duration": 100, "capacity": 900},
                ]
            },
        }
    )
    trace = parse_trace(text)
    assert trace.losses == (0.0, 0.1, 0.1, 0.1, 0.1)
    assert trace.delays_s == (0.0, 0.04, 0.04, 0.02, 0.02)
    assert trace.jitters_s == (0.0, 0.0, 0.0, 0.005, 0.0)  # jitter does not carry
    assert trace.rates_bps == (500e3, 600e3, 700e3, 800e3, 900e3)


def test_opennetlab_capacity_zero_is_an_outage_and_pattern_loops() -> None:
    text = json.dumps(
        {
            "uplink": {
                "trace_pattern": [
                    {"duration": 300, "capacity": 0},
                    {"duration": 700, "capacity": 2000},
                ]
            }
        }
    )
    trace = parse_trace(text)
    assert trace.loop
    assert trace.capacity_at(0.1) == 0.0
    assert trace.capacity_at(1.1) == 0.0  # looped
    assert trace.capacity_at(1.5) == 2e6
    assert trace.outage_fraction() == pytest.approx(0.3)
    assert trace.mean_rate_bps() == pytest.approx(1.4e6)


def test_opennetlab_write_read_round_trip() -> None:
    trace = Trace(
        times_s=(0.0, 0.2, 0.45),
        rates_bps=(1.5e6, 0.0, 812_345.0),
        period_s=1.0,
        delays_s=(0.01, 0.025, 0.0305),
        losses=(0.0, 0.02, 0.5),
        jitters_s=(0.0, 0.003, 0.0),
    )
    text = format_trace(trace, "opennetlab")
    document = json.loads(text)
    assert document["uplink"]["trace_pattern"][1] == {
        "duration": 250,
        "capacity": 0,
        "loss": 0.02,
        "rtt": 50,
        "jitter": 3,
    }
    again = parse_trace(text)
    assert again == trace


# -- Mahimahi ---------------------------------------------------------------------


def test_mahimahi_write_read_keeps_opportunities(tmp_path: Path) -> None:
    rng = random.Random(11)
    stamps = [*sorted(rng.randint(0, 5000) for _ in range(4000)), 5000]
    trace = Trace.from_opportunities(stamps)
    path = tmp_path / "x.trace"
    write_trace(trace, path)
    again = load_trace(str(path))
    assert again.opportunities_ms == tuple(stamps)
    assert again == trace


@pytest.mark.parametrize("rate_bps", [0.3e6, 1e6, 12e6, 48e6, 100e6])
def test_piecewise_to_mahimahi_keeps_rate_and_period(rate_bps: float) -> None:
    trace = steps([(rate_bps, 2.0), (rate_bps / 3, 1.5), (rate_bps * 2, 0.5)])
    stamps = mahimahi.opportunities_for(trace)
    assert stamps == sorted(stamps)
    assert stamps[-1] == 4000  # the period is the last timestamp
    written = Trace.from_opportunities(stamps)
    assert written.period_s == trace.period_s
    # At most half a packet per period from rounding.
    assert abs(written.total_bits() - trace.total_bits()) <= PACKET_BITS / 2 + 1e-6
    # Each second carries its share within two packets.
    for second in range(4):
        bits = trace.binned(1.0).rates_bps[second]
        assert written.binned(1.0).rates_bps[second] == pytest.approx(bits, abs=2 * PACKET_BITS)


def test_mahimahi_cannot_end_in_an_outage() -> None:
    trace = steps([(5e6, 1.0), (0.0, 1.0)])
    with pytest.raises(TraceError, match="ends with zero capacity"):
        format_trace(trace, "mahimahi")


def test_mahimahi_outage_inside_the_trace_has_no_opportunities() -> None:
    trace = steps([(5e6, 1.0), (0.0, 0.5), (5e6, 1.0)])
    stamps = mahimahi.opportunities_for(trace)
    assert not [t for t in stamps if 1000 < t <= 1500]
    assert [t for t in stamps if 1500 < t <= 1510]


# -- Genet and Pensieve -----------------------------------------------------------------


GENET_DUMP = {
    "timestamps": [0.0, 0.5, 1.0, 1.5],
    "bandwidths": [2.0, 3.0, 0.5, 0.5],
    "delays": [20.0, 20.0, 30.0, 30.0],
    "loss": 0.01,
    "queue": 12,
    "delay_noise": 4.0,
    "T_s": 0.5,
}


def test_genet_json_semantics() -> None:
    trace = parse_trace(json.dumps(GENET_DUMP))
    assert trace.source_format == "genet"
    assert trace.times_s == (0.0, 0.5, 1.0)
    assert trace.rates_bps == (2e6, 3e6, 0.5e6)
    assert trace.period_s == 1.5  # the last timestamp marks the end
    assert not trace.loop  # Genet holds the last value
    assert trace.capacity_at(10.0) == 0.5e6
    assert trace.delays_s == (0.02, 0.02, 0.03)
    assert trace.losses == (0.01, 0.01, 0.01)
    assert trace.queue_packets == 12
    assert trace.delay_noise_s == 0.004


def test_genet_single_timestamp_is_constant_for_that_long() -> None:
    trace = parse_trace(
        json.dumps({"timestamps": [30], "bandwidths": [4], "delays": [10], "loss": 0, "queue": 5})
    )
    assert trace.period_s == 30 and trace.rates_bps == (4e6,) and trace.delays_s == (0.01,)


@pytest.mark.parametrize("fmt", ["genet", "genet-csv", "pensieve"])
def test_rate_series_formats_round_trip(fmt: str) -> None:
    trace = parse_trace(json.dumps(GENET_DUMP))
    again = parse_trace(format_trace(trace, fmt), format=fmt)
    assert again.times_s == trace.times_s
    assert again.rates_bps == pytest.approx(trace.rates_bps)
    assert again.period_s == trace.period_s
    if fmt == "genet":
        assert again == trace


def test_genet_csv_semantics() -> None:
    trace = parse_trace("Timestamp,Bandwidth\n0,1.5\n2,3\n5,3\n")
    assert trace.source_format == "genet-csv"
    assert trace.times_s == (0.0, 2.0) and trace.rates_bps == (1.5e6, 3e6)
    assert trace.period_s == 5.0


def test_pensieve_row_closes_the_interval_before_it() -> None:
    # Pensieve's env spends t[i] - t[i-1] seconds at bw[i].
    trace = parse_trace("10.0 9.9\n11.0 1.0\n13.0 4.0\n")
    assert trace.source_format == "pensieve"
    assert trace.times_s == (0.0, 1.0)
    assert trace.rates_bps == (1e6, 4e6)
    assert trace.period_s == 3.0
    assert trace.loop
    assert trace.capacity_at(3.5) == 1e6


# -- detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("0\n1\n1\n", "mahimahi"),
        ('{"uplink": {"trace_pattern": []}}', "opennetlab"),
        ('{"timestamps": [1]}', "genet"),
        ("Timestamp,Bandwidth\n0,1\n", "genet-csv"),
        ("0.0 1.5\n1.0 2.0\n", "pensieve"),
    ],
)
def test_detect_format(text: str, fmt: str) -> None:
    assert detect_format(text) == fmt


def test_detect_format_refuses_unknown_content() -> None:
    with pytest.raises(TraceError, match="cannot tell"):
        detect_format("hello there world\n", "x.trace")
    with pytest.raises(TraceError, match="neither OpenNetLab"):
        detect_format('{"foo": 1}', "x.json")


def test_explicit_format_overrides_detection(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("5\n10\n")
    assert load_trace(str(path)).source_format == "mahimahi"
    with pytest.raises(TraceError, match="expected 2 columns"):
        load_trace(str(path), format="pensieve")  # one column per line is not Pensieve
    with pytest.raises(TraceError, match="unknown trace format"):
        load_trace(str(path), format="ns3")


def test_missing_file_and_unknown_name_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TraceError) as caught:
        load_trace(str(tmp_path / "absent.trace"))
    assert caught.value.fix
    with pytest.raises(TraceError, match="no trace named") as caught:
        load_trace("lte/no-such-trace")
    assert "netlab traces list" in (caught.value.fix or "")


def test_relative_paths_resolve_against_base_dir_before_the_corpus(tmp_path: Path) -> None:
    (tmp_path / "cellular").mkdir()
    (tmp_path / "cellular" / "verizon-lte-short.up").write_text("1\n2\n2\n10\n")
    local = load_trace("cellular/verizon-lte-short.up", base_dir=tmp_path)
    assert local.opportunities_ms == (1, 2, 2, 10)
    bundled = load_trace("cellular/verizon-lte-short.up", base_dir=tmp_path / "elsewhere")
    assert bundled.period_s == pytest.approx(140.0)
    assert bundled.name == "cellular/verizon-lte-short.up"


def test_write_errors_name_the_destination(tmp_path: Path) -> None:
    destination = tmp_path / "out.trace"
    with pytest.raises(TraceError) as caught:
        write_trace(steps([(1e6, 1.0), (0.0, 1.0)]), destination)
    assert caught.value.file == str(destination)
    assert not destination.exists()
