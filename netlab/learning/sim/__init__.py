"""The fast simulator: one RTC call over one traced bottleneck on a virtual clock.

The parts are the lab's own: the RTC media model, packetizer and pacer
(``endpoints.rtc``), the user-space link's queue/rate/delay pipeline
(``shaping.userlink``), and the policy receiver's OpenNetLab window and
reward (``endpoints.agent_rtc``); metrics and scores by ``endpoints.metrics``.
"""

from __future__ import annotations

from netlab.learning.sim.core import GYM_STEP_S, LAB_POLL_S, RtcSimulation, SimConfig
from netlab.learning.sim.episode import EpisodeResult, run_episode
from netlab.learning.sim.sender import SenderSettings

__all__ = ["GYM_STEP_S", "LAB_POLL_S", "EpisodeResult", "RtcSimulation", "SenderSettings",
           "SimConfig", "run_episode"]
