"""The rewards a learner may train on (endpoints.agent_rtc.REWARDS)."""

from __future__ import annotations

import pytest

from endpoints.agent_rtc import REWARDS, capacity_reward, liner_to_log, onl_reward, qoe_reward


def test_onl_reward_is_log_rate_less_a_fifth_of_loss() -> None:
    assert onl_reward([1e6, 300.0, 0.1, 1e6]) == pytest.approx(liner_to_log(1e6) - 0.02)


def test_qoe_reward_weighs_delay_rate_and_loss_as_the_network_score() -> None:
    # No delay, no loss, the top rate: every term full.
    assert qoe_reward([8e6, 0.0, 0.0, 8e6]) == pytest.approx(1.0)
    # 400 ms or more of delay loses the delay term (20 of 70), whatever the rate.
    rate = liner_to_log(1e6)
    assert qoe_reward([1e6, 400.0, 0.0, 1e6]) == pytest.approx((20 * rate + 30) / 70)
    assert qoe_reward([1e6, 900.0, 0.0, 1e6]) == qoe_reward([1e6, 400.0, 0.0, 1e6])
    # 200 ms costs half the delay term; 10 % loss a tenth of the loss term.
    assert qoe_reward([1e6, 200.0, 0.1, 1e6]) == pytest.approx((10 + 20 * rate + 27) / 70)
    # Unlike onl_reward, queueing delay is priced: a little more rate does not pay for it.
    assert onl_reward([1.2e6, 300.0, 0.0, 0]) > onl_reward([1e6, 20.0, 0.0, 0])
    assert qoe_reward([1.2e6, 300.0, 0.0, 0]) < qoe_reward([1e6, 20.0, 0.0, 0])


def test_rewards_are_named() -> None:
    assert {"onl": onl_reward, "qoe": qoe_reward, "capacity": capacity_reward} == REWARDS
