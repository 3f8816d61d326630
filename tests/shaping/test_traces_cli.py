"""`netlab traces` end to end: info, convert, generate, plot, list."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from netlab.cli.main import main
from shaping.traces import load_trace

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = ["traces", "--corpus", str(REPO_ROOT / "traces")]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*CORPUS, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_info_prints_stats_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "info", "steps/10-2-10mbit")
    assert code == 0
    assert "7.333 Mbit/s" in out and "30.000 s" in out
    code, out, _ = _run(capsys, "info", "outages/5mbit-2s-outage", "--json")
    assert code == 0
    stats = json.loads(out)
    assert stats["mean_rate_bps"] == pytest.approx(4.5e6)
    assert stats["outage_fraction"] == pytest.approx(0.1)
    assert stats["delay_s"] == {"min": 0.02, "max": 0.02}


def test_info_on_a_bad_file_reports_file_line_and_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.trace"
    bad.write_text("1\n5\n3\n")
    code, _, err = _run(capsys, "info", str(bad))
    assert code == 1
    assert f"where: {bad}:3" in err
    assert "goes back" in err and "fix:" in err


def test_convert_mahimahi_to_opennetlab_and_back(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = load_trace("cellular/verizon-lte-short.up", corpus_root=REPO_ROOT / "traces")
    as_json = tmp_path / "v.json"
    code, out, _ = _run(
        capsys, "convert", "cellular/verizon-lte-short.up", str(as_json), "--granularity", "100ms"
    )
    assert code == 0, out
    onl = load_trace(str(as_json))
    assert onl.source_format == "opennetlab"
    assert onl.mean_rate_bps() == pytest.approx(source.mean_rate_bps(), rel=1e-6)
    back = tmp_path / "v.up"
    code, _, _ = _run(capsys, "convert", str(as_json), str(back))
    assert code == 0
    again = load_trace(str(back))
    assert again.opportunities_ms is not None
    assert len(again.opportunities_ms) == len(source.opportunities_ms or ())
    assert again.period_s == source.period_s


def test_convert_without_binning_refuses_a_huge_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(
        capsys, "convert", "cellular/verizon-lte-short.up", str(tmp_path / "v.json")
    )
    assert code == 1
    assert "--granularity" in err


def test_generate_is_deterministic_and_honours_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [
        "--min-bw",
        "1Mbit",
        "--max-bw",
        "8Mbit",
        "--interval",
        "500ms",
        "--duration",
        "20s",
        "--delay",
        "20ms",
        "--queue",
        "50pkt",
        "--loss",
        "0.5%",
        "--delay-noise",
        "3ms",
        "--seed",
        "7",
        "--format",
        "genet",
    ]
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert _run(capsys, "generate", str(first), *args)[0] == 0
    assert _run(capsys, "generate", str(second), *args)[0] == 0
    assert first.read_bytes() == second.read_bytes()
    trace = load_trace(str(first))
    assert trace.source_format == "genet"
    assert trace.period_s == 20.0 and trace.segment_count == 40
    assert all(1e6 <= r <= 8e6 for r in trace.rates_bps)
    assert trace.losses == (0.005,) * 40
    assert trace.queue_packets == 50
    assert trace.delay_noise_s == pytest.approx(0.003)


def test_generate_steps_and_unit_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "s.trace"
    code, _, _ = _run(capsys, "generate", str(out), "--steps", "6Mbit:2s,0:1s,3Mbit:1s")
    assert code == 0
    trace = load_trace(str(out))
    assert trace.source_format == "mahimahi"
    assert trace.mean_rate_bps() == pytest.approx((12e6 + 3e6) / 4, rel=0.002)
    code, _, err = _run(
        capsys, "generate", str(out), "--min-bw", "10", "--max-bw", "2Mbit", "--duration", "5s"
    )
    assert code == 1 and "where: --min-bw" in err and "10Mbit" in err


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.parametrize(
    "name", ["cellular/tmobile-lte-short.down", "outages/dropouts", "cellular/3g-synthetic-hsdpa-1"]
)
def test_plot_writes_a_real_png(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    output = tmp_path / "plot.png"
    code, out, _ = _run(capsys, "plot", name, "-o", str(output))
    assert code == 0, out
    width, height = _png_size(output)
    assert width >= 800 and height >= 300
    assert output.stat().st_size > 15_000  # axes, a line and labels, not a blank canvas


def test_list_names_every_bundled_trace(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list")
    assert code == 0
    assert "cellular/verizon-lte-short.up" in out and "opennetlab/medium/4g-3mbps" in out


def test_no_action_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys)
    assert code == 1 and "fix:" in err
