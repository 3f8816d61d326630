"""GCC in the simulator is the lab's GCC: the sender's own, on transport feedback.

The bounds are those ``tests/endpoints/rtc/test_apps_netns.py`` puts on the
lab's sender behind a real 1 Mbit/s htb bottleneck with a 250 ms queue and a
start above capacity; here the simulator's link stands in for htb.
"""

from __future__ import annotations

import numpy as np
import pytest

from endpoints.rtc.sender_core import SenderCore
from netlab.learning.sim import RtcSimulation, SenderSettings, SimConfig, run_episode
from netlab.scenario.model import Estimator
from shaping.spec import LinkShape, QueueLimit
from shaping.traces import Trace, load_trace

DURATION_S = 8.0


@pytest.mark.parametrize("seed", [0, 3])
def test_gcc_settles_below_a_1_mbit_bottleneck(seed: int) -> None:
    config = SimConfig(duration_s=DURATION_S, link=LinkShape(queue=QueueLimit(bytes=31_250)),
                       feedback_delay_s=0.0, sender=SenderSettings(start_bps=1_200_000))
    sim = RtcSimulation(Trace.constant(1_000_000, DURATION_S), config, seed, Estimator("gcc"))
    assert isinstance(sim.sender, SenderCore) and sim.receiver.estimator is None
    while sim.advance():
        raise AssertionError("GCC has no receiver polls to stop at")
    recv, sent = sim.records()
    targets = np.array(sim.targets)
    grid = np.arange((DURATION_S - 3) * 1e6, DURATION_S * 1e6, 50_000)  # the 50 ms rate log
    late = targets[np.searchsorted(targets[:, 0], grid, side="right") - 1, 1]
    assert (np.diff(targets[:, 1]) < 0).any()  # it cut
    assert late.min() >= 0.6e6 and 0.6e6 < np.median(late) <= 1.0e6
    delays_ms = (recv["arrival_ns"] - recv["send_ns"]) / 1e6
    assert (recv["send_ns"] > 0).all() and (delays_ms >= 0).all()
    assert np.percentile(delays_ms[recv["send_ns"] > (DURATION_S - 4) * 1e9], 95) < 150
    tail = recv[recv["arrival_ns"] > (DURATION_S - 4) * 1e9]
    goodput = tail["size"].sum() * 8 / ((tail["arrival_ns"][-1] - tail["arrival_ns"][0]) / 1e9)
    assert 0.55e6 < goodput < 1.0e6
    assert len(recv) > 0.95 * len(sent)
    assert sim.sender.counters.feedback_received > 100  # every 50 ms, from the receiver core


def test_gcc_is_a_controller_beside_policies_and_fixed_rates() -> None:
    trace = load_trace("steps/1-3-1mbit")
    config = SimConfig(duration_s=12.0, link=LinkShape(delay_s=0.02,
                                                       queue=QueueLimit(packets=50)))
    gcc = run_episode(Estimator("gcc"), trace, config, seed=1)
    fixed = run_episode(3e6, trace, config, seed=1)
    assert gcc.polls == 0 and gcc.decisions == 0
    # A fixed 3 Mbit/s overdrives the 1 Mbit/s steps; GCC follows the link.
    assert fixed.metrics["loss"] > 5 * max(gcc.metrics["loss"], 0.005)
    assert gcc.metrics["delay_p95_ms"] < fixed.metrics["delay_p95_ms"]
    assert 0.5e6 < gcc.metrics["recv_rate_bps"] < 2.0e6
    assert gcc.scores["network"] > fixed.scores["network"]
