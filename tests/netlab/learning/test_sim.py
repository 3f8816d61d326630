"""The simulator: deterministic by seed, delivers the trace's capacity, and
observes/rewards with the lab's own window and reward code."""

from __future__ import annotations

import numpy as np
import pytest

from endpoints.agent_rtc import OnlPacketWindow, liner_to_log, onl_reward
from endpoints.rtc.rtp import abs_send_time_from_us
from endpoints.rtc.stats import AbsSendTimeMs, arrival_ms
from netlab.learning.sim import RtcSimulation, SimConfig, run_episode
from netlab.learning.sim.env import SimEnv, action_to_bps
from shaping.spec import LinkShape, QueueLimit
from shaping.traces import Trace, load_trace
from shaping.userlink.rate import ETHERNET_OVERHEAD_BYTES

IP_UDP = 28


def _run(sim: RtcSimulation, bps: float) -> list[tuple[int, list[float], float]]:
    """Drive a simulation with a fixed answer; (poll µs, state, reward) per poll."""
    polls = []
    sim.set_initial_estimate(bps)
    while sim.advance():
        polls.append((sim.now_us, sim.state(), sim.reward()))
        sim.decide(bps)
    return polls


def test_same_seed_same_call_other_seed_other_frames() -> None:
    trace = load_trace("steps/1-3-1mbit")
    config = SimConfig(duration_s=8.0, step_s=0.06)
    a, b, c = (RtcSimulation(trace, config, seed) for seed in (5, 5, 6))
    polls_a, polls_b, polls_c = _run(a, 2e6), _run(b, 2e6), _run(c, 2e6)
    assert polls_a == polls_b
    recv_a, sent_a = a.records()
    recv_b, sent_b = b.records()
    assert np.array_equal(recv_a, recv_b) and np.array_equal(sent_a, sent_b)
    assert not np.array_equal(sent_a["size"][:500], c.records()[1]["size"][:500])
    assert polls_a != polls_c


def test_saturating_sender_gets_the_trace_capacity() -> None:
    """A 2 Mbit/s link and an 8 Mbit/s estimate: after the encoder's ramp the
    receiver gets the link rate in Ethernet frames, within 2 %."""
    trace = Trace.constant(2_000_000, 20.0)
    sim = RtcSimulation(trace, SimConfig(link=LinkShape(delay_s=0.02,
                                                        queue=QueueLimit(packets=50))), 1)
    _run(sim, 8e6)
    recv, sent = sim.records()
    window = (recv["arrival_ns"] >= 5e9) & (recv["arrival_ns"] < 20e9)
    frame_bits = (recv["size"][window].astype(np.int64) + IP_UDP + ETHERNET_OVERHEAD_BYTES) * 8
    rate = frame_bits.sum() / 15.0
    assert rate == pytest.approx(2_000_000, rel=0.02)
    assert sim.link.drops.get("queue_droptail", 0) > 100  # it really was saturated
    assert len(sent) > len(recv)


def test_observation_and_reward_are_the_lab_window_on_the_same_records() -> None:
    """Replaying the simulated receiver log through a fresh OnlPacketWindow (built
    the way the lab's receiver builds AlphaRTC stats) gives every polled state."""
    trace = load_trace("opennetlab/medium/4g-3mbps")
    sim = RtcSimulation(trace, SimConfig(duration_s=10.0, step_s=0.2), 3)
    rng = np.random.default_rng(0)
    sim.set_initial_estimate(300_000.0)
    polls: list[tuple[int, list[float], float]] = []
    while sim.advance():
        polls.append((sim.now_us, sim.state(), sim.reward()))
        sim.decide(float(rng.uniform(2e5, 4e6)))
    recv, _ = sim.records()
    estimates = [(0, 300_000.0)] + [(t, e) for t, e in sim.estimates]
    window = OnlPacketWindow()
    unwrap = AbsSendTimeMs()
    replayed: dict[int, list[float]] = {}
    i = 0
    for t_us, _, _ in polls:
        while i < len(recv) and recv["arrival_ns"][i] <= t_us * 1000:
            row = recv[i]
            in_force = [e for t, e in estimates if t * 1000 < row["arrival_ns"]][-1]
            # AlphaRTC's times, as the lab's receiver gives them (endpoints.rtc.stats):
            # abs-send-time (2^-18 s) unwrapped and rounded to ms; arrival µs rounded to ms
            send_ms = unwrap(abs_send_time_from_us(int(row["send_ns"]) // 1000))
            window.on_packet({"send_time_ms": send_ms,
                              "arrival_time_ms": arrival_ms(int(row["arrival_ns"])),
                              "ssrc": int(row["ssrc"]), "sequence_number": int(row["rtp_seq"]),
                              "payload_size": int(row["size"] - row["header_length"])},
                             in_force)
            i += 1
        replayed[t_us] = window.state()
    assert len(polls) >= 40
    for t_us, state, reward in polls:
        again = replayed[t_us]
        assert again[0] == state[0] and again[2] == state[2]
        assert abs(again[3] - state[3]) < 1.0  # REMB's log carries the estimate as whole bps
        assert again[1] == state[1]
        assert reward == onl_reward(state) == liner_to_log(state[0]) - 0.2 * state[2]
    assert len({state[1] for _, state, _ in polls}) > 10  # delays vary: a real test


@pytest.mark.filterwarnings("ignore:.*Box observation space maximum value is infinity")
def test_gym_env_spaces_and_steps() -> None:
    from gymnasium.utils.env_checker import check_env

    env = SimEnv(["steps/1-3-1mbit"], SimConfig(duration_s=3.0, step_s=0.06, record=False))
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert obs.shape == (4,) and info["trace"] == "steps/1-3-1mbit"
    assert env.action_space.contains(np.array([0.5], dtype=np.float32))
    steps, truncated = 0, False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(np.array([0.7], dtype=np.float32))
        steps += 1
        assert not terminated and np.isfinite(float(reward))
    assert 40 <= steps <= 51  # 3 s of 60 ms polls after the first packet
    assert info["estimate_bps"] == pytest.approx(action_to_bps(0.7))
    assert action_to_bps(0.0) == pytest.approx(10_000) and action_to_bps(1.0) == pytest.approx(8e6)


def test_mahimahi_trace_and_policy_episode() -> None:
    from pathlib import Path

    from netlab.agent.checkpoints import load_policy

    model = Path(__file__).resolve().parents[3] / "models" / "opennetlab-pretrained.pth"
    result = run_episode(load_policy(model), load_trace("cellular/verizon-lte-short.up"),
                         SimConfig(duration_s=10.0, step_s=0.2), seed=2)
    assert result.polls >= 45 and result.decisions >= 40
    assert 0 < result.metrics["recv_rate_bps"] < 8e6
    assert 0 < result.scores["network"] <= 100


def test_history_env_sends_past_states_and_scales_the_estimate() -> None:
    """An ``rtc-hist`` env: 4 × N observations whose older states are the earlier
    polls', and an action that multiplies the estimate (log scale 0.5–2)."""
    from endpoints.agent_rtc import RtcContract
    from netlab.agent.policies import rtc_history

    config = SimConfig(duration_s=3.0, step_s=0.2, window_ms=200, record=False,
                       contract=RtcContract("rtc-hist", 3))
    env = SimEnv(["steps/1-3-1mbit"], config, action=rtc_history.ACTION)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (12,) and not obs.any()
    start = env.sim.estimate_bps if env.sim is not None else 0.0
    double = np.array([1.0], dtype=np.float32)  # the top of the range: ×2
    previous, _, _, _, info = env.step(double)
    assert info["estimate_bps"] == pytest.approx(2 * start)
    obs, _, _, _, info = env.step(double)
    assert info["estimate_bps"] == pytest.approx(4 * start)
    np.testing.assert_array_equal(obs[4:8], previous[:4])
    hold = np.array([0.5], dtype=np.float32)
    obs2, _, _, _, info = env.step(hold)
    assert info["estimate_bps"] == pytest.approx(4 * start, rel=1e-6)
    np.testing.assert_array_equal(obs2[4:12], obs[:8])


def test_a_fresh_history_policy_holds_its_estimate() -> None:
    """Its actor starts near zero, so a fresh ``rtc-hist`` policy answers ×1 and the
    call stays at the sender's start rate instead of drifting to a bound."""
    from netlab.agent.policies import rtc_history
    from netlab.agent.policies.spec import SpecPolicy

    policy = SpecPolicy(rtc_history.initial_checkpoint(seed=4, history=5))
    result = run_episode(policy, load_trace("cellular/tmobile-lte-short.down"),
                         SimConfig(duration_s=10.0, step_s=0.2, window_ms=200), seed=1)
    assert result.decisions >= 40
    assert 200_000 < result.metrics["recv_rate_bps"] < 400_000  # the 300 kbit/s start
