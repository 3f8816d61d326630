"""Real-time trace replay: a trace becomes timed shape changes applied at absolute deadlines.

``build_schedule(trace, base)`` turns a trace into changes;
``start_replayer(namespace, ifname, strategy, schedule, loop, log_path)``
replays them on a tc shaper in a process of its own, logging scheduled vs
applied time of every change and the shaping qdisc's counters every 10 ms
(``read_replay_log``); ``run_replay`` is the loop itself, for any backend.
"""

from __future__ import annotations

from labcore.priority import Priority, raise_priority
from shaping.replay.clock import sleep_until_ns
from shaping.replay.log import ReplayLog, ReplayLogWriter, read_replay_log
from shaping.replay.process import ReplayDone, ReplayerHandle, ReplayerSpec, start_replayer
from shaping.replay.replayer import ReplayOutcome, run_replay
from shaping.replay.schedule import (
    DEFAULT_GRANULARITY_S,
    Change,
    Schedule,
    build_schedule,
    constant_steps,
    replay_queue,
)

__all__ = [
    "DEFAULT_GRANULARITY_S",
    "Change",
    "Priority",
    "ReplayDone",
    "ReplayLog",
    "ReplayLogWriter",
    "ReplayOutcome",
    "ReplayerHandle",
    "ReplayerSpec",
    "Schedule",
    "build_schedule",
    "constant_steps",
    "raise_priority",
    "read_replay_log",
    "replay_queue",
    "run_replay",
    "sleep_until_ns",
    "start_replayer",
]
