"""The fast simulator: one RTC call over one traced bottleneck on a virtual clock.

The parts are the lab's own, driven on a simulated clock: the RTC sender and
receiver cores (``endpoints.rtc.sender_core``, ``receiver_core``: media,
pacer, stamping, transport feedback, GCC, REMB), the receiver's estimators
(the policy's ``endpoints.agent_rtc.PolicyEstimator`` with its OpenNetLab
window, fixed, plugins), and the user-space link's queue/rate/delay pipeline
(``shaping.userlink``); metrics and scores by ``endpoints.metrics``.
"""

from __future__ import annotations

from endpoints.rtc.sender_core import SenderSettings
from netlab.learning.sim.core import GYM_STEP_S, LAB_POLL_S, RtcSimulation, SimConfig
from netlab.learning.sim.episode import Controller, EpisodeResult, run_episode

__all__ = ["GYM_STEP_S", "LAB_POLL_S", "Controller", "EpisodeResult", "RtcSimulation",
           "SenderSettings", "SimConfig", "run_episode"]
