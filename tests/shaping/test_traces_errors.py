"""Golden errors: every malformed trace in traces_bad/ fails with the exact message.

Each ``traces_bad/<format>/<case>.<ext>`` has a ``<case>.err`` beside it with
the rendered error (what, file:line, fix). ``NETLAB_REGOLD=1`` rewrites the
goldens after a deliberate wording change; review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shaping.traces import TraceError, parse_trace

BAD = Path(__file__).resolve().parent / "traces_bad"
CASES = sorted(p for p in BAD.glob("*/*") if p.suffix != ".err")


def test_there_are_golden_cases_for_every_format() -> None:
    formats = {case.parent.name for case in CASES}
    assert formats == {"mahimahi", "opennetlab", "genet", "genet-csv", "pensieve"}
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_bad_trace_fails_with_golden_message(case: Path) -> None:
    fmt = case.parent.name
    relative = f"{fmt}/{case.name}"
    with pytest.raises(TraceError) as caught:
        parse_trace(case.read_bytes().decode(), file=relative, format=fmt)
    rendered = caught.value.render() + "\n"
    golden = case.with_suffix(".err")
    if os.environ.get("NETLAB_REGOLD"):
        golden.write_text(rendered)
    assert golden.exists(), f"no golden for {relative}; run with NETLAB_REGOLD=1 and review"
    assert rendered == golden.read_text()
    # Every error names the file and says how to fix it.
    assert caught.value.file == relative
    assert caught.value.fix


@pytest.mark.parametrize(
    ("case", "line"),
    [
        ("mahimahi/empty_line.trace", 3),
        ("mahimahi/going_back.trace", 4),
        ("opennetlab/unknown_key.json", 7),
        ("opennetlab/zero_length.json", 5),
        ("opennetlab/non_numeric.json", 6),
        ("genet/going_back.json", 3),
        ("genet/non_numeric.json", 4),
        ("genet-csv/going_back.csv", 4),
        ("pensieve/going_back.txt", 3),
    ],
)
def test_errors_point_at_the_offending_line(case: str, line: int) -> None:
    fmt = case.split("/")[0]
    with pytest.raises(TraceError) as caught:
        parse_trace((BAD / case).read_bytes().decode(), file=case, format=fmt)
    assert caught.value.line == line
    assert caught.value.where == f"{case}:{line}"
