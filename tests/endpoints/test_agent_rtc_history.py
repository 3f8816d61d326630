"""Contract ``rtc-hist``: the flow sends its last N states newest first and
reads the reply as a factor on the estimate in force, within bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from endpoints.agent_client import Decision
from endpoints.agent_rtc import (
    HISTORY_MAX_BPS,
    HISTORY_MIN_BPS,
    PolicyEstimator,
    RtcContract,
    make_policy_estimator,
    rtc_contract,
)
from endpoints.rtc.errors import PluginError


class Scripted:
    """A decider that records what it was sent and answers from a script."""

    def __init__(self, answers: list[float | None]) -> None:
        self.answers = answers
        self.sent: list[list[float]] = []

    def decide(self, observation: npt.ArrayLike, reward: float = 0.0, done: bool = False,
               *, wait_s: float | None = None) -> Decision:
        self.sent.append([float(x) for x in np.asarray(observation).reshape(-1)])
        answer = self.answers.pop(0) if self.answers else None
        action = None if answer is None else np.array([answer], dtype=np.float32)
        return Decision(action, None if answer is None else 1.0, len(self.sent))

    def summary(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        return None


def _packet(seq: int, arrival_ms: int, size: int = 1000) -> dict[str, int]:
    return {"send_time_ms": arrival_ms - 20, "arrival_time_ms": arrival_ms, "payload_type": 96,
            "sequence_number": seq, "ssrc": 1, "padding_length": 0, "header_length": 24,
            "payload_size": size}


def test_contracts_by_name_and_size() -> None:
    assert rtc_contract("rtc-onl4", 4) == RtcContract()
    hist = rtc_contract("rtc-hist", 40)
    assert (hist.history, hist.obs_size, hist.relative) == (10, 40, True)
    for name, size in (("rtc-onl4", 8), ("rtc-hist", 6), ("rtc-hist", 0), ("rtc-hist", 4 * 65),
                       ("tcp-mi5", 5)):
        with pytest.raises(ValueError, match="no RTC contract"):
            rtc_contract(name, size)


def test_history_is_sent_newest_first_and_padded_with_zeros() -> None:
    decider = Scripted([1.0, 1.0, 1.0, 1.0])
    estimator = PolicyEstimator(decider, start_bps=500_000, window_ms=200,
                                contract=RtcContract("rtc-hist", 3))
    assert decider.sent == [[0.0] * 12]  # the first question, on a zero state
    seq = 0
    states = []
    for step in range(3):
        for i in range(5 + step):  # a different rate every poll
            seq += 1
            estimator.report_states(_packet(seq, 1000 * (step + 1) + 10 * i))
        states.append(estimator.window.state())
        estimator.get_estimated_bandwidth()
    assert decider.sent[1] == [*states[0], *[0.0] * 8]
    assert decider.sent[2] == [*states[1], *states[0], *[0.0] * 4]
    assert decider.sent[3] == [*states[2], *states[1], *states[0]]
    assert states[0] != states[1] != states[2]


def test_reply_is_a_factor_on_the_estimate_within_bounds() -> None:
    decider = Scripted([2.0, 1.5, 0.5, 1e9, 1e-9])
    estimator = PolicyEstimator(decider, start_bps=400_000, contract=RtcContract("rtc-hist", 2))
    assert estimator.estimate_bps == 800_000  # the first answer scales the start
    expected = [1_200_000, 600_000, HISTORY_MAX_BPS, HISTORY_MIN_BPS]
    for seq, want in enumerate(expected, start=1):
        estimator.report_states(_packet(seq, 100 * seq))
        assert estimator.get_estimated_bandwidth() == int(want)


def test_onl4_reply_stays_the_estimate_itself() -> None:
    decider = Scripted([700_000.0, 2.0])
    estimator = PolicyEstimator(decider, start_bps=400_000)
    assert estimator.estimate_bps == 700_000
    estimator.report_states(_packet(1, 100))
    assert estimator.get_estimated_bandwidth() == 2
    assert decider.sent[1][:4] == estimator.window.state() and len(decider.sent[1]) == 4


@pytest.mark.parametrize("query", ["contract=rtc-hist&history=0", "contract=rtc-hist&history=65",
                                   "contract=rtc-onl4&history=3", "contract=bogus",
                                   "history=x"])
def test_bad_contract_options_are_refused(query: str) -> None:
    with pytest.raises(PluginError) as caught:
        make_policy_estimator(f"/nonexistent.sock?{query}")
    assert "history" in (caught.value.fix or "")
