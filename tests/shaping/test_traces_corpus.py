"""The bundled corpus: every file parses, is documented, resolves by short name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shaping.traces import TraceError, corpus, load_trace

REPO_ROOT = Path(__file__).resolve().parents[2]
TRACES = REPO_ROOT / "traces"
ENTRIES = corpus.list_traces(TRACES)


def test_corpus_is_there_and_small() -> None:
    assert len(ENTRIES) >= 20
    total = sum(path.stat().st_size for path in TRACES.rglob("*") if path.is_file())
    assert total <= 5 * 1024 * 1024


def test_corpus_covers_the_promised_kinds() -> None:
    kinds = {entry.name.split("/")[0] for entry in ENTRIES}
    assert {"wired", "cellular", "opennetlab", "steps", "outages"} <= kinds
    cellular = [e.name for e in ENTRIES if e.name.startswith("cellular/")]
    for technology in ("-lte-", "3g-", "5g-"):
        assert any(technology in name for name in cellular), technology


def test_the_shipped_scenario_traces_resolve() -> None:
    for name in ("traces/cellular/verizon-lte-short.up", "traces/cellular/verizon-lte-short.down"):
        assert load_trace(name, base_dir=REPO_ROOT / "scenarios", corpus_root=TRACES).loop


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_corpus_trace_parses_by_name_and_is_in_the_readme(entry: corpus.CorpusEntry) -> None:
    trace = load_trace(entry.name, corpus_root=TRACES)
    assert trace.mean_rate_bps() > 0
    assert trace.name == entry.name
    assert corpus.resolve(entry.name, TRACES) == entry.path
    assert corpus.resolve("traces/" + entry.name, TRACES) == entry.path
    assert f"| `{entry.name}` |" in (TRACES / "README.md").read_text()


@pytest.mark.parametrize(
    ("klass", "low_mbit", "high_mbit", "rtt_ms"),
    [("low", 0.0, 1.0, 55), ("medium", 2.0, 3.0, 62), ("high", 10.0, 1e9, 30)],
)
def test_opennetlab_classes_match_their_definition(
    klass: str, low_mbit: float, high_mbit: float, rtt_ms: float
) -> None:
    members = [e for e in ENTRIES if e.name.startswith(f"opennetlab/{klass}/")]
    assert len(members) >= 2
    for entry in members:
        trace = load_trace(str(entry.path))
        assert low_mbit < trace.mean_rate_bps() / 1e6 < high_mbit, entry.name
        assert trace.delays_s is not None
        assert {round(d * 2000, 6) for d in trace.delays_s} == {rtt_ms}, entry.name


def test_default_corpus_dir_is_the_repository_traces() -> None:
    if corpus.ENV_VAR in os.environ:
        pytest.skip(f"{corpus.ENV_VAR} points the corpus elsewhere")
    assert corpus.corpus_dir() == TRACES


def test_unknown_name_suggests_neighbours() -> None:
    with pytest.raises(TraceError) as caught:
        corpus.resolve("cellular/verizon-lte-short", TRACES)
    assert "cellular/verizon-lte-short.up" in caught.value.what


def test_corpus_matches_its_recipes() -> None:
    result = subprocess.run(
        [sys.executable, str(TRACES / "build_corpus.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
