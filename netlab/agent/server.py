"""The agent's serving loop: one thread serves every flow of the host over one
SOCK_SEQPACKET Unix socket; a second thread runs the control API
(:mod:`netlab.agent.control`).

Each turn of the loop takes a pending reload (:mod:`~netlab.agent.reload`),
waits (:mod:`~netlab.agent.schedule`, or plainly in epoll when neither
warm-ups nor polling are on), reads every waiting frame
(:mod:`~netlab.agent.transport`), admits them (:mod:`~netlab.agent.requests`)
and answers the round (:mod:`~netlab.agent.batching`); when one connection
or a few are ready, their requests are answered as each is read where the fast
lane (:mod:`~netlab.agent.lane`) can. The stats split each
decision into sent → read (``breakdown_us.to_agent``) and read → replied
(``in_agent``); ``--trace N`` keeps the newest N decisions' timestamps, which
``bench/agent.py`` joins with the flows' own.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from netlab.agent.batching import Batcher
from netlab.agent.lane import FastLane
from netlab.agent.policies.base import Policy, PolicyInfo
from netlab.agent.polling import DEFAULT_POLL_BUDGET, MAX_POLL_BUDGET, Poller
from netlab.agent.reload import PendingReload, Reloader
from netlab.agent.requests import Admission, FlowState, Request, learn_arrivals
from netlab.agent.schedule import (
    DEFAULT_WARM_INTERVAL_S,
    IDLE_WAKE_S,
    WARM_MODES,
    WakeSchedule,
    sleep,
)
from netlab.agent.stats import ServingStats
from netlab.agent.transitions import TransitionBuffer
from netlab.agent.transport import Connection, Transport

#: Up to this many connections ready at once are read and answered one request at
#: a time in the fast lane; more are batched (one forward pass for all). With
#: OpenNetLab's model a lone lane answer takes ~15–20 µs hot and a batched round
#: of 8 ~70 µs (``bench/agent_profile.py``), so below this the last reply of the
#: wake-up is out about when a batch's would be, and the first ones much sooner.
LANE_MAX_READY = 4


class Agent:
    """Serving state and loop; ``serve()`` returns when ``stop()`` is called."""

    def __init__(self, policy: Policy, socket_path: Path, *, deadline_s: float = 0.001,
                 explore: bool = False, warm_interval_s: float | None = DEFAULT_WARM_INTERVAL_S,
                 warm: str = "predict", poll_budget: float = DEFAULT_POLL_BUDGET,
                 trace: int = 0, transition_capacity: int = 65536, source: str = "",
                 device: dict[str, Any] | None = None) -> None:
        if warm not in WARM_MODES:
            raise ValueError(f"warm: one of {WARM_MODES}, got {warm!r}")
        if not 0 <= poll_budget <= MAX_POLL_BUDGET:
            raise ValueError(f"the polling budget is a share of one core in [0, "
                             f"{MAX_POLL_BUDGET}], got {poll_budget}")
        self.policy = policy
        self.source = source
        self.device = device or {"asked": "cpu", "used": "cpu"}
        self.socket_path = socket_path
        self.deadline_us = deadline_s * 1e6
        self.explore = explore
        self.stats = ServingStats(deadline_s, trace)
        self.counters = self.stats.counters
        self.errors = self.stats.errors
        info = policy.info
        self.transitions = TransitionBuffer(info.obs_size, info.action_size, transition_capacity)
        self.transport = Transport(socket_path, self.counters, self.errors)
        self.reloader = Reloader(self.transport.wake)
        poller = Poller(poll_budget, self.counters) if poll_budget > 0 else None
        self.lane = FastLane(self.transport, self.stats, self.transitions, explore)
        self._lane_open = self.lane.serve(policy)
        schedule = WakeSchedule(self.counters, warm=warm, warm_interval_s=warm_interval_s or 0,
                                poller=poller, lane=self.lane)
        # neither warm-ups nor polling: no schedule, the loop sleeps in epoll
        self.schedule = schedule if schedule.warm_mode != "off" or poller else None
        self.poller = poller
        self.admission = Admission(self.transport, self.counters, self.errors, self._info,
                                   track_arrivals=schedule.tracks_arrivals)
        self.batcher = Batcher(self.transport, self.stats, self.transitions, explore)
        self.started = time.time()
        self._stop = False

    def _info(self) -> PolicyInfo:
        return self.policy.info

    @property
    def connections(self) -> dict[int, Connection]:
        return self.transport.connections

    def flows(self) -> Iterator[FlowState]:
        for conn in self.transport.connections.values():
            yield from conn.flows.values()

    def open(self) -> None:
        """Bind and listen (the readiness signal: call it after the control API)."""
        self.transport.open()

    # ---- control-thread entry points (thread-safe by handing over to the loop) -------

    def stop(self) -> None:
        self._stop = True
        self.transport.wake()

    def reload(self, policy: Policy, source: str, timeout_s: float = 5.0) -> PendingReload:
        """Swap in ``policy`` between two decisions; waits until the loop has done it.
        On a GPU the new policy gets its own graphs first (in the calling thread)."""
        problem = self.policy.compatible_with(policy)
        if problem is not None:
            raise ValueError(problem)
        if self.device.get("used") == "cuda":
            from netlab.agent.device import serve_on
            policy, _ = serve_on(policy, "cuda")
        return self.reloader.request(self.policy, policy, source, timeout_s)

    def snapshot(self) -> dict[str, Any]:
        info = self.policy.info
        flows = sum(len(c.flows) for c in list(self.transport.connections.values()))
        polling: dict[str, Any] = {"budget_share": 0.0, "spin_s": 0.0, "refused": 0,
                                   "hit_rate": None}
        if self.poller is not None:
            polling = self.poller.snapshot()
        polling.update(self.schedule.snapshot() if self.schedule is not None
                       else {"warm": "off"})
        return {"policy": {"format": info.format, "contract": info.contract,
                           "obs_size": info.obs_size, "action_size": info.action_size,
                           "recurrent": info.recurrent, "parameters": info.parameters,
                           "step_ms": info.step_ms, "source": self.source},
                "device": dict(self.device),
                "uptime_s": round(time.time() - self.started, 3),
                "deadline_us": self.deadline_us, "explore": self.explore,
                **self.stats.snapshot(),
                "connections_open": len(self.transport.connections), "flows_active": flows,
                "polling": polling,
                # full collections (the last) stall every flow: after the start-up
                # heap is frozen they walk only what serving made since
                "gc_collections": [generation["collections"] for generation in gc.get_stats()],
                "transitions": {"buffered": len(self.transitions),
                                "recorded": self.transitions.recorded,
                                "dropped": self.transitions.dropped}}

    # ---- loop ------------------------------------------------------------------------

    def serve(self) -> None:
        transport = self.transport
        epoll = transport.start()
        schedule = self.schedule
        stopped = self._stopped
        try:
            while not self._stop:
                if self.reloader.pending is not None:
                    self._take_reload()
                if schedule is None:
                    events = sleep(epoll, IDLE_WAKE_S, exact=False)
                    polled = False
                else:
                    events, polled = schedule.wait(epoll, self.policy, self.flows(), stopped)
                if events:
                    self._dispatch(events, polled)
        finally:
            transport.close()

    def _stopped(self) -> bool:
        return self._stop

    def _dispatch(self, events: list[tuple[int, int]], polled: bool) -> None:
        requests: list[Request] = []
        transport = self.transport
        on_frame = self.admission.on_frame

        lane = (self._lane_open and len(events) <= LANE_MAX_READY
                and self.reloader.pending is None)
        answer = self.lane.answer

        def admit(conn: Connection, data: bytes, recv_ns: int) -> None:
            # in the lane each frame is answered before the next read, until one is
            # not the lane's: from there on frames wait for the round (a flow's
            # requests stay in order)
            if not lane or requests or not answer(conn, data, recv_ns):
                on_frame(conn, data, recv_ns, requests)

        for fd, _ in events:
            handler = transport.handler(fd)
            if isinstance(handler, Connection):
                transport.read(handler, admit, time.monotonic_ns)
            elif handler == "listen":
                transport.accept()
            elif handler == "wake":
                transport.drain_wake()
        if requests:
            if self.reloader.pending is not None:
                self._take_reload()
            self.batcher.answer(self.policy, requests)
            if self.schedule is not None:
                self.schedule.last_forward_ns = self.batcher.last_reply_ns
                learn_arrivals(requests, polled)
        if lane and self.lane.record(polled) and self.schedule is not None:
            self.schedule.last_forward_ns = max(self.schedule.last_forward_ns,
                                                self.lane.last_reply_ns)

    def _take_reload(self) -> None:
        pending = self.reloader.take(self.policy, self.flows(), self.counters["decisions"])
        if pending is None:
            return
        self.policy = pending.policy
        self.source = pending.source
        self._lane_open = self.lane.serve(self.policy)
        self.counters["reloads"] += 1
        pending.done.set()
