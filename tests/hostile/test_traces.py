"""Hostile trace files, every format: refused at their line, quickly, within 4 GiB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.conftest import refuse

ONL_ENTRY = '{{"duration": {d}, "capacity": {c}}}'


def _onl(*entries: str) -> str:
    return '{"type": "video", "uplink": {"trace_pattern": [\n' + ",\n".join(entries) + "\n]}}\n"


def _genet(**over: object) -> str:
    doc: dict[str, object] = {"timestamps": [0, 1], "bandwidths": [1, 2], "delays": [10, 10],
                              "loss": 0, "queue": 10}
    doc.update(over)
    return json.dumps(doc, indent=1)


CASES: dict[str, tuple[str, str, str]] = {
    # name: (file name, content, text the error must contain)
    "mahimahi-span": ("t.up", "0\n4000000000\n", "t.up:2"),
    "mahimahi-many-digits": ("t.up", "1\n" + "9" * 5000 + "\n", "t.up:2"),
    "mahimahi-negative": ("t.up", "5\n-3\n", "t.up:2"),
    "mahimahi-binary": ("t.up", "\x00\x01\x02garbage\xff", "t.up"),
    "mahimahi-backwards": ("t.up", "10\n5\n", "t.up:2"),
    "onl-duration-1e300": ("t.json", _onl(ONL_ENTRY.format(d="1e300", c=1000)), "t.json:2"),
    "onl-capacity-1e300": ("t.json", _onl(ONL_ENTRY.format(d=1000, c="1e300")), "t.json:2"),
    "onl-nan": ("t.json", _onl(ONL_ENTRY.format(d="NaN", c=1000)), "t.json:2"),
    "onl-infinity": ("t.json", _onl(ONL_ENTRY.format(d=1000, c="Infinity")), "t.json:2"),
    "onl-negative": ("t.json", _onl(ONL_ENTRY.format(d=1000, c=-5)), "t.json:2"),
    "onl-span-sum": ("t.json", _onl(*[ONL_ENTRY.format(d=36_000_000, c=1)] * 5), "span"),
    "onl-rtt-huge": ("t.json", _onl('{"duration": 10, "capacity": 10, "rtt": 1e15}'), "t.json:2"),
    "onl-wrong-type": ("t.json", _onl(ONL_ENTRY.format(d='"ten"', c=1000)), "t.json:2"),
    "onl-deep-nesting": ("t.json", "[" * 200_000 + "]" * 200_000, "t.json"),
    "onl-truncated": ("t.json", _onl(ONL_ENTRY.format(d=1000, c=1000))[:40], "t.json"),
    "genet-timestamp-1e300": ("g.json", _genet(timestamps=[0, 1e300]), "g.json"),
    "genet-bandwidth-1e300": ("g.json", _genet(bandwidths=[1, 1e300]), "g.json"),
    "genet-delay-huge": ("g.json", _genet(delays=[1e15, 1]), "g.json"),
    "genet-queue-huge": ("g.json", _genet(queue=1e300), "g.json"),
    "genet-csv-timestamp": ("g.csv", "Timestamp,Bandwidth\n0,1\n1e300,2\n", "g.csv:3"),
    "genet-csv-inf": ("g.csv", "Timestamp,Bandwidth\n0,1\n1,inf\n", "g.csv:3"),
    "genet-csv-nan": ("g.csv", "Timestamp,Bandwidth\n0,nan\n1,1\n", "g.csv:2"),
    "pensieve-span": ("p.txt", "0 1\n1e12 2\n", "p.txt:2"),
    "pensieve-throughput": ("p.txt", "0 1\n1 1e300\n", "p.txt:2"),
    "pensieve-inf": ("p.txt", "0 1\n1 inf\n", "p.txt:2"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_trace_is_refused(case: str, tmp_path: Path) -> None:
    name, content, where = CASES[case]
    (tmp_path / name).write_bytes(content.encode("utf-8", errors="surrogateescape"))
    refusal = refuse("traces", "info", name, cwd=tmp_path)
    assert where in refusal.stderr, refusal.stderr


def test_oversized_trace_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.up"
    with open(path, "wb") as f:
        f.truncate(3 << 30)  # sparse: 3 GiB that reading would need in memory
    refusal = refuse("traces", "info", "big.up", cwd=tmp_path)
    assert "big.up" in refusal.stderr and "MiB" in refusal.stderr


def test_validate_refuses_a_two_line_trace_of_46_days(tmp_path: Path) -> None:
    """The issue's report: `netlab validate` allocated 29.8 GiB and died."""
    (tmp_path / "t.up").write_text("0\n4000000000\n")
    (tmp_path / "s.yaml").write_text(
        "name: hostile\nduration: 10s\nhosts: [a, b]\nlinks:\n"
        "  - endpoints: [a, b]\n    up: {trace: t.up}\n")
    refusal = refuse("validate", "s.yaml", cwd=tmp_path)
    assert "t.up:2" in refusal.stderr


def test_golden_trace_span_error(tmp_path: Path) -> None:
    (tmp_path / "t.up").write_text("0\n4000000000\n")
    refusal = refuse("traces", "info", "t.up", cwd=tmp_path)
    assert refusal.stderr.strip() == (
        "error: timestamp 4000000000 ms is beyond the longest trace netlab replays "
        "(86400000 ms, 24 h)\n"
        f"  where: {tmp_path}/t.up:2\n"
        "  fix: cut the trace to at most 24 h; a trace loops, so a day's pattern repeats")


def test_golden_opennetlab_segment_error(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(_onl(ONL_ENTRY.format(d="1e300", c=1000)))
    refusal = refuse("traces", "info", "t.json", cwd=tmp_path)
    assert refusal.stderr.strip() == (
        "error: uplink.trace_pattern[0].duration is 1e+300, above the maximum 8.64e+07 (ms)\n"
        f"  where: {tmp_path}/t.json:2\n"
        "  fix: use a value <= 8.64e+07; netlab replays traces of at most 24 h")
