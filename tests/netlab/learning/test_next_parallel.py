"""K drops only when an unfaithful run's own report blamed the machine."""

from __future__ import annotations

from netlab.learning.finetune import next_parallel
from netlab.learning.labs import EpisodeResult, EpisodeSpec
from netlab.learning.scenario_set import EnvConfig


def _result(faithful: bool, causes: list[str] | None = None,
            error: str | None = None) -> EpisodeResult:
    spec = EpisodeSpec(EnvConfig(), "/tmp/nowhere")
    return EpisodeResult(spec, faithful=faithful, error=error, machine_causes=causes or [])


def test_all_faithful_keeps_k_silently() -> None:
    assert next_parallel(3, [_result(True), _result(True)]) == (3, "")


def test_a_link_missing_its_trace_with_an_idle_machine_keeps_k() -> None:
    k, note = next_parallel(3, [_result(True), _result(False)])
    assert k == 3
    assert "machine not blamed: K stays 3" in note


def test_the_machine_blamed_lowers_k_and_says_why() -> None:
    busy = "the CPUs were 97 % busy over the run"
    k, note = next_parallel(3, [_result(False, [busy]), _result(True)])
    assert k == 2
    assert busy in note and "K lowered to 2" in note


def test_k_never_drops_below_one_and_failed_runs_do_not_count() -> None:
    assert next_parallel(1, [_result(False, ["steal"])])[0] == 1
    assert next_parallel(2, [_result(False, error="boom")]) == (2, "")
