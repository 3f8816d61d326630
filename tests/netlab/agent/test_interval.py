"""Which decision interval and window an RTC policy flow gets."""

from __future__ import annotations

from netlab.agent.interval import MAX_INTERVAL_S, MIN_INTERVAL_S, decision_timing, in_range


def test_the_scenario_wins_then_the_checkpoints_step_then_the_receivers_poll() -> None:
    assert decision_timing(0.02, 60.0, None).interval_s == 0.02
    onl = decision_timing(None, 60.0, None)
    assert (onl.interval_s, onl.window_ms, onl.source) == (0.06, 60.0, "the checkpoint's step")
    unknown = decision_timing(None, None, None)
    assert (unknown.interval_s, unknown.window_ms) == (0.2, 200.0)


def test_the_window_follows_the_interval_unless_the_checkpoint_declares_one() -> None:
    assert decision_timing(0.02, 60.0, None).window_ms == 20.0
    assert decision_timing(0.02, 200.0, 60.0).window_ms == 60.0  # netlab's simulator's
    assert decision_timing(None, 200.0, 60.0).describe() == (
        "every 200 ms (the checkpoint's step), window 60 ms")


def test_a_step_outside_the_range_is_held_to_it() -> None:
    assert decision_timing(None, 5.0, None).interval_s == MIN_INTERVAL_S
    assert decision_timing(None, 5000.0, None).interval_s == MAX_INTERVAL_S
    assert in_range(0.01) and in_range(1.0) and not in_range(0.009) and not in_range(1.5)
