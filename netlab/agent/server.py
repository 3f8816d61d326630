"""The per-host agent process: ``python -m netlab.agent --socket PATH --checkpoint CKPT``.

One thread serves every flow of the host over one SOCK_SEQPACKET Unix
socket (mode 0600); a second thread runs the control API
(:mod:`netlab.agent.control`). Each wake-up reads every waiting frame from
every ready connection and answers all OBSERVEs of the round with one
forward pass (DESIGN.md, "Decision serving": batching raised throughput
1.4–2×).

Wake-ups, not the model, set the round trip at realistic rates: on this VM a
sleeping vCPU halts (no guest halt-polling), and waking it costs 50–200 µs;
after it, the serving path runs 3–4× slower until its caches refill. So the
agent learns when each flow's next request will come (flows decide
periodically; :class:`netlab.agent.stats.ArrivalPredictor`) and, per flow:

* rehearses that flow's last request (decode, forward pass with its state,
  encode; nothing sent or kept) just before it is due when the model has idled
  past ``--warm-interval``; a large model after a long idle gets up to 4
  passes (``_warm``);
* busy-polls the socket (``epoll`` with timeout 0, SCHED_FIFO when it has it)
  in a window around the due time, learnt from the flow's recent prediction
  errors, and sleeps otherwise, waking its own measured lateness early.
  Sleeps use ``select`` on the epoll fd, so their timeouts are µs-exact
  (``epoll_wait`` rounds up to whole ms).

Polling is opt-in and capped by ``--poll-budget`` (a share of one core,
default 0: off, at most 0.5; ``bench/agent.py --agent-args '--poll-budget
0.2'`` measures it). The poller runs at the serving thread's SCHED_FIFO
priority, and the kernel throttles a CPU's real-time tasks together once they
use 95 % of it; in one measurement of two fine-tuning labs with polling agents
on this 2-vCPU machine a user-space link process was held 109 ms at p99 (not
isolated), so labs do not poll unless asked. With polling on, the budget is a
token bucket refilled at that rate (bursts of at most that many seconds);
with the bucket empty the agent sleeps through windows, and while fewer than
60 % of its recent polls found their request (a busy machine) it
polls only every 8th window. Irregular
flows (errors wider than the largest window) get no window and cost
nothing. Measured cost with the bench's flows at 50 Hz (``bench/agent.py``):
OpenNetLab 1 flow 0.2 %, 8 flows ~2–5 %, 32 flows up to the 20 % budget of
polling; rehearsals add ~1 % per 8 flows for the OpenNetLab model and ~5 % for
the mvfst-sized one at 10 Hz. ``--warm periodic`` keeps the earlier
behaviour (run the model every ``--warm-interval`` of idleness: ~25 % of a core
for the mvfst-sized model), ``--poll-budget 0`` never polls.

A malformed, oversized, out-of-order or mismatched frame gets an ERROR frame
on its connection and nothing else changes: other flows (and the same
connection's later valid frames) are served as before. Replies are sent
non-blocking; a client that does not read loses replies, never the agent's time.

The stats split each decision into sent → read (``breakdown_us.to_agent``)
and read → replied (``in_agent``); ``--trace N`` keeps the newest N
decisions' timestamps, which ``bench/agent.py`` joins with the flows' own.

Exit: SIGTERM/SIGINT stop the loop, the socket file is removed and
``--stats-out`` (JSON) is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch

from endpoints import agent_protocol as proto
from netlab.agent.checkpoints import load_policy
from netlab.agent.policies.base import Policy, RecurrentState
from netlab.agent.policies.opennetlab import initial_checkpoint
from netlab.agent.policies.spec import SpecPolicy
from netlab.agent.stats import ArrivalPredictor, LatencyStats, SpinBudget
from netlab.agent.transitions import TransitionBuffer
from netlab.errors import NetlabError
from shaping.replay.clock import raise_priority

READS_PER_CONNECTION = 64
DEFAULT_WARM_INTERVAL_S = 0.002
IDLE_WAKE_S = 0.2
#: Busy-polling budget, in shares of one core (``--poll-budget``), and its cap: on a
#: 2-vCPU host the flows and the link emulator need the rest.
DEFAULT_POLL_BUDGET = 0.0
MAX_POLL_BUDGET = 0.5
#: How late a timed sleep of this process wakes before it has measured it itself
#: (DESIGN.md, "Facts": a deadline loop wakes 120–170 µs late at p50), and the
#: bounds of what it learns (the 90th percentile of its recent timed wake-ups).
INITIAL_WAKE_LEAD_NS = 150_000
WAKE_LEAD_BOUNDS_NS = (20_000, 600_000)
WARM_MODES = ("predict", "periodic", "off")
MAX_REHEARSALS = 4
#: Polling goes on while at least this share of recent polls (moving average, gain
#: HIT_RATE_GAIN) found its request; below it only every PROBE_EVERY-th window is polled.
MIN_HIT_RATE = 0.6
HIT_RATE_GAIN = 0.05
PROBE_EVERY = 8
LONG_IDLE_NS = 20_000_000


@dataclass
class FlowState:
    flow: int
    last_seq: int = 0
    state: RecurrentState | None = None
    decisions: int = 0
    arrivals: ArrivalPredictor = field(default_factory=ArrivalPredictor)
    last_frame: bytes = b""  # the newest OBSERVE, what a warm-up rehearses


@dataclass
class Connection:
    sock: socket.socket
    flows: dict[int, FlowState] = field(default_factory=dict)
    errors: int = 0


@dataclass
class Request:
    conn: Connection
    flow: FlowState
    frame: proto.Frame
    recv_ns: int


@dataclass
class PendingReload:
    policy: Policy
    source: str
    done: threading.Event = field(default_factory=threading.Event)
    swapped_after: int = -1


class Agent:
    """Serving state and loop; ``serve()`` returns when ``stop()`` is called."""

    def __init__(self, policy: Policy, socket_path: Path, *, deadline_s: float = 0.001,
                 explore: bool = False, warm_interval_s: float | None = DEFAULT_WARM_INTERVAL_S,
                 warm: str = "predict", poll_budget: float = DEFAULT_POLL_BUDGET,
                 trace: int = 0, transition_capacity: int = 65536, source: str = "") -> None:
        if warm not in WARM_MODES:
            raise ValueError(f"warm: one of {WARM_MODES}, got {warm!r}")
        if not 0 <= poll_budget <= MAX_POLL_BUDGET:
            raise ValueError(f"the polling budget is a share of one core in [0, "
                             f"{MAX_POLL_BUDGET}], got {poll_budget}")
        self.policy = policy
        self.source = source
        self.socket_path = socket_path
        self.deadline_us = deadline_s * 1e6
        self.explore = explore
        self.warm_mode = warm if warm_interval_s else "off"
        self._warm_interval_ns = int((warm_interval_s or 0) * 1e9)
        self.budget = SpinBudget(poll_budget)
        info = policy.info
        self.transitions = TransitionBuffer(info.obs_size, info.action_size, transition_capacity)
        self.latency = LatencyStats()
        self.to_agent = LatencyStats()  # request sent → read by the agent (its wake-up)
        self.in_agent = LatencyStats()  # read → reply sent (decode, forward, encode)
        self.trace_capacity = trace
        self.trace: list[tuple[int, int, int, int, int]] = []
        self.counters: dict[str, int] = {"decisions": 0, "batches": 0, "max_batch": 0,
                                         "server_misses": 0, "dropped_replies": 0,
                                         "connections": 0, "hellos": 0, "byes": 0,
                                         "warmups": 0, "reloads": 0, "spins": 0,
                                         "spin_hits": 0, "spins_skipped": 0,
                                         "timed_wakes": 0}
        self._last_forward_ns = 0
        self._warm_cost_ns = 0
        self._warm_costs: list[int] = []
        self._wake_lateness: list[int] = []
        self._wake_lead_ns = INITIAL_WAKE_LEAD_NS
        self.errors: dict[str, int] = {}
        self.started = time.time()
        self._stop = False
        self._pending: PendingReload | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.listener: socket.socket | None = None
        self.connections: dict[int, Connection] = {}
        self._epoll: select.epoll | None = None
        self._scratch = LatencyStats()  # what a rehearsal records into (never reported)
        self._polling = False  # the events being handled were found by polling
        self._hit_rate = 1.0  # share of recent polls that found a request (moving average)
        self._probe = 0
        self._handlers: dict[int, Connection | str] = {}

    def open(self) -> None:
        """Bind and listen: from here on clients can connect (a connectable socket is
        the readiness signal, so open it last, after the control API)."""
        if self.listener is None:
            self.listener = _listen(self.socket_path)

    # ---- control-thread entry points (thread-safe by handing over to the loop) -------

    def stop(self) -> None:
        self._stop = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def reload(self, policy: Policy, source: str, timeout_s: float = 5.0) -> PendingReload:
        """Swap in ``policy`` between two decisions; waits until the loop has done it."""
        problem = self.policy.compatible_with(policy)
        if problem is not None:
            raise ValueError(problem)
        pending = PendingReload(policy, source)
        self._pending = pending
        self._wake()
        if not pending.done.wait(timeout_s):
            raise TimeoutError("the serving loop did not take the new policy in time")
        return pending

    def snapshot(self) -> dict[str, Any]:
        flows = sum(len(c.flows) for c in list(self.connections.values()))
        info = self.policy.info
        return {"policy": {"format": info.format, "contract": info.contract,
                           "obs_size": info.obs_size, "action_size": info.action_size,
                           "recurrent": info.recurrent, "parameters": info.parameters,
                           "source": self.source},
                "uptime_s": round(time.time() - self.started, 3),
                "deadline_us": self.deadline_us, "explore": self.explore,
                **self.counters, "errors": dict(self.errors),
                "connections_open": len(self.connections), "flows_active": flows,
                "latency_us": {**self.latency.percentiles(),
                               "max": round(self.latency.max_us, 1)},
                "histogram": self.latency.histogram(),
                "breakdown_us": {"to_agent": self.to_agent.percentiles(),
                                 "in_agent": self.in_agent.percentiles()},
                "polling": {"budget_share": self.budget.share,
                            "spin_s": round(self.budget.spent_ns / 1e9, 6),
                            "refused": self.budget.refused,
                            "hit_rate": round(self._hit_rate, 3),
                            "wake_lead_us": round(self._wake_lead_ns / 1e3, 1),
                            "warm": self.warm_mode,
                            "warm_cost_us": round(self._warm_cost_ns / 1e3, 1)},
                **({"trace": {"fields": ["flow", "seq", "sent_ns", "recv_ns", "reply_ns"],
                              "rows": list(self.trace)}} if self.trace_capacity else {}),
                "transitions": {"buffered": len(self.transitions),
                                "recorded": self.transitions.recorded,
                                "dropped": self.transitions.dropped}}

    # ---- loop ------------------------------------------------------------------------

    def serve(self) -> None:
        self.open()
        assert self.listener is not None
        ep = self._epoll = select.epoll()
        self._register(self.listener, "listen")
        self._register(self._wake_r, "wake")
        epfd = ep.fileno()
        try:
            while not self._stop:
                self._take_pending()
                now = time.monotonic_ns()
                spin_until, wake_at, warm = self._plan(now)
                if warm is not None:
                    self._warm(warm)
                    continue
                if spin_until > now and self._worth_polling() and self.budget.available(now):
                    # Predictive polling: a flow's request is due; a halted vCPU would
                    # wake 100+ µs late for it, a polling one sees it at once.
                    self.counters["spins"] += 1
                    start = now
                    polls = 0
                    while True:
                        events = ep.poll(0)
                        now = time.monotonic_ns()
                        polls += 1
                        if events or now >= spin_until or self._stop:
                            break
                    self._polling = polls > 1  # it came while polling: its read time is exact
                    self.budget.spend(now - start)
                    self._hit_rate += HIT_RATE_GAIN * ((1.0 if events else 0.0) - self._hit_rate)
                    if events:
                        self.counters["spin_hits"] += 1
                else:
                    if spin_until > now:  # out of budget: sleep through this window
                        wake_at = spin_until
                    timeout_s = IDLE_WAKE_S if wake_at is None else \
                        max(0.0, min(IDLE_WAKE_S, (wake_at - now) / 1e9))
                    timed = wake_at is not None and timeout_s < IDLE_WAKE_S
                    if epfd < 1024:  # select() on the epoll fd: µs timeouts
                        ready, _, _ = select.select([epfd], [], [], timeout_s)
                        events = ep.poll(0) if ready else []
                    else:  # beyond FD_SETSIZE: epoll_wait, whose timeout rounds up to ms
                        events = ep.poll(timeout_s)
                    self._polling = False
                    if not events and timed and wake_at is not None:
                        self._learn_lateness(time.monotonic_ns() - wake_at)
                self._dispatch(events)
        finally:
            for conn in list(self.connections.values()):
                conn.sock.close()
            self.connections.clear()
            self._handlers.clear()
            ep.close()
            self._epoll = None
            self.listener.close()
            self.listener = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        requests: list[Request] = []
        for fd, _ in events:
            handler = self._handlers.get(fd)
            if handler == "wake":
                with contextlib.suppress(BlockingIOError):
                    self._wake_r.recv(4096)
            elif handler == "listen":
                self._accept()
            elif isinstance(handler, Connection):
                self._read(handler, requests)
        if requests:
            self._take_pending()
            self._answer(requests)

    def _worth_polling(self) -> bool:
        """Poll while most polls find their request. On a busy machine the flows'
        requests come late and polls run to the end of their windows (and, as
        SCHED_FIFO, keep a flow that shares the CPU from running): then only every
        ``PROBE_EVERY``-th window is polled, to notice when polling pays again."""
        if self._hit_rate >= MIN_HIT_RATE:
            return True
        self._probe += 1
        if self._probe % PROBE_EVERY:
            self.counters["spins_skipped"] += 1
            return False
        return True

    def _plan(self, now: int) -> tuple[int, int | None, FlowState | None]:
        """(poll until, sleep until, warm now) from every flow's next expected request.

        A window opens the agent's own wake-up lateness earlier (so that it is
        awake in time) and, when the model will have idled past ``--warm-interval``,
        the warm-up's cost earlier again (so that it is hot in time)."""
        spin_until = 0
        wake_at: int | None = None
        warm: FlowState | None = None
        idle = now - self._last_forward_ns > self._warm_interval_ns
        predictive = self.budget.share > 0 or self.warm_mode == "predict"
        if predictive:
            for conn in self.connections.values():
                for flow in conn.flows.values():
                    window = flow.arrivals.window(now)
                    if window is None:
                        continue
                    opens, closes = window
                    cold = (self.warm_mode == "predict" and
                            opens - self._last_forward_ns > self._warm_interval_ns)
                    wake = opens - self._wake_lead_ns - (self._warm_cost_ns if cold else 0)
                    if wake <= now:
                        if cold and idle:
                            warm = flow
                        if self.budget.share > 0:
                            spin_until = max(spin_until, closes)
                    elif wake_at is None or wake < wake_at:
                        wake_at = wake
        if self.warm_mode == "periodic":
            due = self._last_forward_ns + self._warm_interval_ns
            if now >= due:
                warm = FlowState(0)
            wake_at = due if wake_at is None else min(wake_at, due)
        return spin_until, wake_at, warm

    def _warm(self, flow: FlowState) -> None:
        """Rehearse serving ``flow``'s last request (decode, forward pass with its
        state, encode, record) without sending or keeping anything: after an idle
        vCPU wakes, that path runs 3–4× slower until its caches are refilled (the
        OpenNetLab path here: 330 µs after 20 ms asleep, 70 µs hot, 93 µs right after
        a rehearsal; spinning alone does not refill them).

        A large model needs more than one pass: the mvfst-rl-sized one (10 MB of
        weights) took 1.9 ms after 100 ms asleep, 1.0–1.4 ms on the next pass, 0.7 ms
        on the third, 0.55 ms hot (huge pages made no difference). After an idle of
        ``LONG_IDLE_NS`` or more, passes repeat until one is no more than 15 % faster
        than the one before, at most ``MAX_REHEARSALS``; otherwise one pass."""
        start = time.monotonic_ns()
        previous = 0
        # only a long idle empties the caches that far: a model in use is one pass away
        passes = MAX_REHEARSALS if start - self._last_forward_ns > LONG_IDLE_NS else 1
        for _ in range(passes):
            began = time.monotonic_ns()
            if flow.last_frame:
                frame = proto.decode(flow.last_frame)
                obs = np.stack([frame.vector])
                out = self.policy.act(obs, [flow.state], False,
                                      np.array([frame.value], dtype=np.float32))
                proto.encode(proto.Kind.ACTION, frame.flow, frame.seq, frame.t_ns,
                             out.actions[0], value=float(out.value[0]))
                self._scratch.add((time.monotonic_ns() - frame.t_ns) / 1e3)
            else:
                self.policy.warm()
            took = time.monotonic_ns() - began
            if previous and took * 20 > previous * 17:  # within 15 %: as hot as it gets
                break
            previous = took
            if self._epoll is not None and self._epoll.poll(0):
                break  # a request (or a connection) is waiting: serve it first
        end = time.monotonic_ns()
        # what a warm-up costs when it is needed (cold)
        self._warm_cost_ns = _p90_of_newest(self._warm_costs, end - start)
        self._last_forward_ns = end
        self.counters["warmups"] += 1

    def _learn_lateness(self, late_ns: int) -> None:
        self.counters["timed_wakes"] += 1
        low, high = WAKE_LEAD_BOUNDS_NS
        self._wake_lead_ns = min(high, max(low, _p90_of_newest(self._wake_lateness,
                                                               max(0, late_ns))))

    def _register(self, sock: socket.socket, handler: Connection | str) -> None:
        assert self._epoll is not None
        self._epoll.register(sock.fileno(), select.EPOLLIN)
        self._handlers[sock.fileno()] = handler

    def _take_pending(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        old = self.policy
        self.policy = pending.policy
        self.source = pending.source
        old_init, new_init = old.initial_state(), pending.policy.initial_state()
        if old_init is None or new_init is None or old_init[0].shape != new_init[0].shape:
            for conn in self.connections.values():
                for flow in conn.flows.values():
                    flow.state = None
        self.counters["reloads"] += 1
        pending.swapped_after = self.counters["decisions"]
        pending.done.set()

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            conn = Connection(sock)
            self.connections[sock.fileno()] = conn
            self._register(sock, conn)
            self.counters["connections"] += 1

    def _close(self, conn: Connection) -> None:
        fd = conn.sock.fileno()
        if self._epoll is not None:
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)
        self._handlers.pop(fd, None)
        self.connections.pop(fd, None)
        conn.sock.close()

    def _read(self, conn: Connection, requests: list[Request]) -> None:
        for _ in range(READS_PER_CONNECTION):
            try:
                data = conn.sock.recv(proto.MAX_FRAME + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(conn)
                return
            if not data:
                self._close(conn)
                return
            self._on_data(conn, data, requests, time.monotonic_ns())

    def _refuse(self, conn: Connection, frame_flow: int, seq: int, t_ns: int,
                code: proto.ErrorCode, message: str) -> None:
        conn.errors += 1
        self.errors[code.name] = self.errors.get(code.name, 0) + 1
        self._send(conn, proto.error(frame_flow, seq, t_ns, code, message))

    def _on_data(self, conn: Connection, data: bytes, requests: list[Request],
                 recv_ns: int) -> None:
        try:
            frame = proto.decode(data)
        except proto.FrameError as exc:
            flow = seq = t_ns = 0
            if len(data) >= proto.HEADER_SIZE:
                _, _, _, flow, seq, _, t_ns, _ = proto.HEADER.unpack_from(data)
            self._refuse(conn, flow, seq, t_ns, exc.code, str(exc))
            return
        info = self.policy.info
        if frame.kind is proto.Kind.HELLO:
            wanted = frame.vector.astype(int).tolist() if frame.vector.size == 2 else None
            if wanted != [info.obs_size, info.action_size] or \
                    frame.text not in ("", info.contract):
                self._refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.MISMATCH,
                             f"this agent serves {info.contract} {info.obs_size}→"
                             f"{info.action_size}; flow asked for {frame.text or '(any)'} "
                             f"{wanted}")
                return
            conn.flows[frame.flow] = FlowState(frame.flow)
            self.counters["hellos"] += 1
            self._send(conn, proto.encode(proto.Kind.HELLO_OK, frame.flow, 0, frame.t_ns,
                                          [info.obs_size, info.action_size],
                                          text=info.contract))
        elif frame.kind is proto.Kind.OBSERVE:
            state = conn.flows.get(frame.flow)
            if state is None:
                self._refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.NO_HELLO,
                             f"flow {frame.flow} sent OBSERVE before HELLO")
            elif frame.seq <= state.last_seq:
                self._refuse(conn, frame.flow, frame.seq, frame.t_ns,
                             proto.ErrorCode.OUT_OF_ORDER,
                             f"sequence {frame.seq} after {state.last_seq}")
            elif frame.vector.size != info.obs_size:
                self._refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.MISMATCH,
                             f"{frame.vector.size} observation values, policy takes "
                             f"{info.obs_size}")
            else:
                state.last_seq = frame.seq
                # the flow's send time (a clean periodic signal, unlike the read time,
                # which moves with the agent's own business), if it is a plausible one;
                # how long it then took to reach the socket is learnt apart, from
                # requests read while polling (those read times are exact)
                sent = frame.t_ns if recv_ns - 1_000_000_000 < frame.t_ns <= recv_ns else recv_ns
                if self._polling:
                    state.arrivals.reached(recv_ns - sent)
                state.arrivals.arrived(sent)
                state.last_frame = data
                requests.append(Request(conn, state, frame, recv_ns))
        elif frame.kind is proto.Kind.BYE:
            if conn.flows.pop(frame.flow, None) is not None:
                self.counters["byes"] += 1
        else:
            self._refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.UNKNOWN_KIND,
                         f"{frame.kind.name} is not a request")

    def _send(self, conn: Connection, data: bytes) -> bool:
        try:
            conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            self.counters["dropped_replies"] += 1
            return False
        except OSError:
            return False  # the peer is gone; its EOF closes the connection
        return True

    def _answer(self, requests: list[Request]) -> None:
        """One forward pass per round; a flow with two requests waiting (its first
        reply was late) gets them in order, in successive rounds."""
        while requests:
            seen: set[int] = set()
            batch: list[Request] = []
            rest: list[Request] = []
            for request in requests:
                key = id(request.flow)
                (rest if key in seen else batch).append(request)
                seen.add(key)
            self._forward(batch)
            requests = rest

    def _forward(self, batch: list[Request]) -> None:
        obs = np.stack([r.frame.vector for r in batch])
        rewards = np.array([r.frame.value for r in batch], dtype=np.float32)
        out = self.policy.act(obs, [r.flow.state for r in batch], self.explore, rewards)
        replied: list[int] = []
        for i, request in enumerate(batch):
            frame = request.frame
            request.flow.state = out.states[i]
            request.flow.decisions += 1
            self._send(request.conn, proto.encode(proto.Kind.ACTION, frame.flow, frame.seq,
                                                  frame.t_ns, out.actions[i],
                                                  value=float(out.value[i])))
            replied.append(time.monotonic_ns())
        t_reply = self._last_forward_ns = replied[-1]
        for request, reply_ns in zip(batch, replied, strict=True):
            frame = request.frame
            latency_us = (reply_ns - frame.t_ns) / 1e3
            self.latency.add(latency_us)
            self.to_agent.add((request.recv_ns - frame.t_ns) / 1e3)
            self.in_agent.add((reply_ns - request.recv_ns) / 1e3)
            if latency_us > self.deadline_us:
                self.counters["server_misses"] += 1
            if self.trace_capacity:
                self.trace.append((frame.flow, frame.seq, frame.t_ns, request.recv_ns, reply_ns))
        if len(self.trace) > self.trace_capacity:
            del self.trace[:len(self.trace) - self.trace_capacity]
        n = len(batch)
        self.counters["decisions"] += n
        self.counters["batches"] += 1
        self.counters["max_batch"] = max(self.counters["max_batch"], n)
        self.transitions.append_batch(
            [r.frame.flow for r in batch], [r.frame.seq for r in batch],
            [r.frame.t_ns for r in batch], t_reply, rewards,
            [r.frame.done for r in batch], out.log_prob, out.value, obs, out.actions)


def _p90_of_newest(samples: list[int], sample: int, keep: int = 32) -> int:
    """Add ``sample`` to the newest ``keep`` ``samples``; their 90th percentile."""
    samples.append(sample)
    if len(samples) > keep:
        del samples[0]
    return sorted(samples)[len(samples) * 9 // 10]


def _listen(path: Path) -> socket.socket:
    """Bind the SEQPACKET socket with mode 0600 from the start (umask), replacing
    only a stale socket file nobody listens on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise NetlabError("the agent socket path exists and is not a socket",
                              where=str(path), fix="remove it or choose another --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
        else:
            raise NetlabError("another agent is listening on this socket", where=str(path),
                              fix="stop it first or choose another --socket")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise NetlabError(f"cannot bind the agent socket: {exc.strerror}", where=str(path),
                          fix="use a path in an existing, writable directory (at most 107 "
                              "bytes)") from exc
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def open_policy(checkpoint: str | None, seed: int = 0) -> tuple[Policy, str]:
    if checkpoint:
        return load_policy(checkpoint), checkpoint
    return SpecPolicy(initial_checkpoint(seed)), f"initial policy (seed {seed})"


def _duration(text: str) -> float:
    cleaned = text.strip().lower()
    for suffix, scale in (("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if cleaned.endswith(suffix):
            return float(cleaned[: -len(suffix)]) * scale
    return float(cleaned)


# Below the user-space link and the trace replayer (50): shaping comes first.
AGENT_FIFO_PRIORITY = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", required=True, type=Path,
                        help="Unix SEQPACKET socket to serve on (created with mode 0600)")
    parser.add_argument("--checkpoint", default=None,
                        help="policy file (netlab format, OpenNetLab PPO state_dict, "
                             "TorchScript); default: a freshly initialised OpenNetLab-shaped "
                             "policy")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial policy")
    parser.add_argument("--deadline", type=_duration, default=0.001,
                        help="reply budget counted as a server-side miss (default 1ms)")
    parser.add_argument("--explore", action="store_true",
                        help="sample actions (policy std) instead of the deterministic mean")
    parser.add_argument("--warm-interval", type=_duration, default=DEFAULT_WARM_INTERVAL_S,
                        help="the model counts as cold after this much idle time (default "
                             "2ms; 0 disables warm-ups)")
    parser.add_argument("--warm", choices=WARM_MODES, default="predict",
                        help="predict (default): rehearse a flow's last request just before "
                             "its next expected one when the model has gone cold; periodic: "
                             "run the model whenever it has idled --warm-interval (costs CPU "
                             "all the time); off")
    parser.add_argument("--poll-budget", type=float, default=DEFAULT_POLL_BUDGET,
                        help="share of one core the agent may spend busy-polling around each "
                             f"flow's next expected request (default {DEFAULT_POLL_BUDGET}, at "
                             f"most {MAX_POLL_BUDGET}; 0: always sleep in epoll)")
    parser.add_argument("--trace", type=int, default=0,
                        help="keep the newest N decisions' (flow, seq, sent, read, replied) "
                             "CLOCK_MONOTONIC times in the stats (for benchmarks)")
    parser.add_argument("--transitions", type=int, default=65536,
                        help="transition buffer capacity in decisions (default 65536)")
    parser.add_argument("--control", type=Path, default=None,
                        help="Unix socket for the HTTP control API (health, stats, load, "
                             "drain)")
    parser.add_argument("--stats-out", type=Path, default=None,
                        help="write the final stats here as JSON on exit")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: one decision is tiny)")
    parser.add_argument("--priority", choices=("fifo", "nice", "none"), default="fifo",
                        help="scheduling of the serving thread (default fifo, below the "
                             "link emulator and replayer): flows load the CPU while it serves")


def run_agent(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    policy, source = open_policy(args.checkpoint, args.seed)
    if not 0 <= args.poll_budget <= MAX_POLL_BUDGET:
        raise NetlabError(f"--poll-budget {args.poll_budget} is not a share of one core in "
                          f"[0, {MAX_POLL_BUDGET}]", where="command line",
                          fix=f"use 0 (never poll) to {MAX_POLL_BUDGET}")
    agent = Agent(policy, args.socket, deadline_s=args.deadline, explore=args.explore,
                  warm_interval_s=args.warm_interval or None, warm=args.warm,
                  poll_budget=args.poll_budget, trace=max(0, args.trace),
                  transition_capacity=args.transitions, source=source)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    control = None
    if args.control is not None:
        from netlab.agent.control import ControlServer  # aiohttp only when asked for
        control = ControlServer(agent, args.control)
        control.start()
    agent.open()
    # only the serving thread (this one) is raised; the control API stays normal
    held = raise_priority(args.priority, fifo_priority=AGENT_FIFO_PRIORITY)
    print(f"agent: scheduling {held.policy}", file=sys.stderr, flush=True)
    print(f"agent: serving {policy.info.contract} ({policy.info.format}, {source}) on "
          f"{args.socket}", file=sys.stderr, flush=True)
    try:
        agent.serve()
    finally:
        if control is not None:
            control.stop()
        if args.stats_out is not None:
            args.stats_out.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.stats_out.with_suffix(".tmp")
            tmp.write_text(json.dumps(agent.snapshot(), indent=1))
            os.replace(tmp, args.stats_out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netlab.agent",
                                     description="Serve a policy to this host's flows.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_agent(args)
    except NetlabError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
