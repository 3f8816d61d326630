"""The endpoint side of the policy agent: ask, never wait past the deadline.

A flow sends its observation every step and keeps running on the newest
action it has (mvfst-rl's asynchronous actor design, Sivakumar et al.,
"MVFST-RL: An Asynchronous RL Framework for Congestion Control with
Delayed Actions", 2019). :meth:`AgentClient.decide` sends one observation
and waits for its reply at most until the deadline (default 1 ms); a reply
that does not make it is a *miss*: the caller's fallback acts (keep the last
action, or a rule-based controller) and stays in charge until a reply is
timely again. Misses, late replies and the time spent in fallback are
counted, and every timely round trip is timed (observation sent → action
returned to the caller, i.e. applied).

While it waits, ``decide`` sleeps in ``select`` on the socket until the reply
or the deadline, then reads what came: the simplest wait a deadline allows
(a plain blocking ``recv`` is what the floor in ``bench/echo.py`` does, but
its only timeout, SO_RCVTIMEO, counts in scheduler ticks: 4 ms at HZ=250).
With ``spin_s`` > 0 it polls the socket (non-blocking ``recv``) for up to
``spin_s`` first (never past the deadline) and only then sleeps: a polling
process takes a reply without a wake-up, at the price of a CPU held while it
polls. Polling stops early, and is skipped for the next 16 decisions, when the
process was preempted while polling (another task wants this CPU: polling
would only make both wait), and for the next 4 when a poll ran out before the
reply came; ``stats.spin_s`` counts its cost. ``bench/agent_profile.py
--only client`` measures both waits against the floor's.

While a decision is in flight the calling thread runs at the real-time rung
below the agent's (:class:`labcore.priority.DecisionWait`, where the process
may: the lab grants it to flows that talk to an agent): the reply wakes it at
once instead of after the host's other flows' turns, which on a busy 2-core
host cost a normal process hundreds of µs and, now and then, the deadline.
``boost_wait=False`` keeps it at normal priority; ``summary()["wait_priority"]``
says which held.

An agent that is not there (not started yet, stopped, crashed) costs one
failed ``send`` per decision and a reconnection attempt at most once per
``reconnect_interval_s``; nothing here blocks longer than the deadline.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from endpoints import agent_protocol as proto
from labcore.jsonfile import write_json_atomic
from labcore.priority import DecisionWait, freeze_start_up_heap

_flow_ids = itertools.count(1)
#: How long ``decide`` polls for its reply before sleeping in ``select`` (0: it
#: sleeps at once). Polling costs up to this much CPU per decision and flow; the
#: floor's clients do not poll, and neither does a flow unless asked.
DEFAULT_SPIN_S = 0.0
#: A gap this long between two polls means another task had this CPU: polling then
#: only takes turns from it (and waits a scheduler slice for the next one), so the
#: client sleeps instead, and for the next ``SPIN_BACKOFF`` decisions too; after a poll
#: that ran out before its reply came (the agent is slower than that), ``SLOW_BACKOFF``.
PREEMPTED_NS = 50_000
SPIN_BACKOFF = 16
SLOW_BACKOFF = 4
_DISCONNECTED = (errno.EPIPE, errno.ECONNRESET, errno.ECONNREFUSED, errno.ENOENT,
                 errno.ENOTCONN, errno.EBADF)


@dataclass(frozen=True)
class Decision:
    """What one ``decide`` produced: the action if its reply was timely."""

    action: npt.NDArray[np.float32] | None
    latency_us: float | None
    seq: int
    applied_ns: int = 0  # CLOCK_MONOTONIC when the reply was taken (0: no reply)

    @property
    def timely(self) -> bool:
        return self.action is not None


class Decider(Protocol):
    """What a flow's policy estimator asks: :class:`AgentClient` in a lab; the
    simulator's caller, who answers each poll itself, in ``netlab.learning.sim``."""

    def decide(self, observation: npt.ArrayLike, reward: float = 0.0, done: bool = False,
               *, wait_s: float | None = None) -> Decision: ...

    def summary(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


#: Round-trip times kept for the results' percentiles: the newest this many
#: (a 1-hour call at 15 decisions/s has 54,000).
RECENT_LATENCIES = 1 << 16


class LatencyRing:
    """The newest ``RECENT_LATENCIES`` round-trip times (µs), in a buffer
    written in full when made, so a long run's memory is flat from the
    start rather than a list (about 32 bytes a decision, 1.7 MB/h in a
    1-hour soak) or a lazily committed buffer that creeps up as it fills."""

    def __init__(self, capacity: int = RECENT_LATENCIES) -> None:
        self._values = np.full(capacity, np.nan, dtype=np.float32)
        self.total = 0

    def append(self, latency_us: float) -> None:
        self._values[self.total % len(self._values)] = latency_us
        self.total += 1

    def __len__(self) -> int:
        return min(self.total, len(self._values))

    def recent(self) -> list[float]:
        """The kept samples, oldest first, to 0.1 µs."""
        size = len(self._values)
        if self.total <= size:
            kept = self._values[:self.total]
        else:
            start = self.total % size
            kept = np.concatenate((self._values[start:], self._values[:start]))
        return [round(float(x), 1) for x in kept]


@dataclass
class ClientStats:
    decisions: int = 0
    timely: int = 0
    misses: int = 0
    late_replies: int = 0
    send_failures: int = 0
    errors: int = 0
    reconnects: int = 0
    fallback_s: float = 0.0
    spin_s: float = 0.0
    last_error: str | None = None
    latency_us: LatencyRing = field(default_factory=lambda: LatencyRing())


class AgentClient:
    """One flow's connection to its host's agent (see the module docstring)."""

    def __init__(self, socket_path: str | os.PathLike[str], *, policy: str, obs_size: int,
                 action_size: int, deadline_s: float = 0.001, flow: int | None = None,
                 reconnect_interval_s: float = 1.0, spin_s: float = DEFAULT_SPIN_S,
                 boost_wait: bool = True) -> None:
        if deadline_s <= 0:
            raise ValueError("the deadline must be positive")
        if spin_s < 0:
            raise ValueError("the spin time cannot be negative")
        self.spin_ns = int(spin_s * 1e9)
        self.path = str(socket_path)
        self.policy = policy
        self.obs_size = obs_size
        self.action_size = action_size
        self.deadline_ns = int(deadline_s * 1e9)
        self.flow = flow if flow is not None else (os.getpid() << 8 | next(_flow_ids)) & 0xFFFFFFFF
        self.reconnect_interval_ns = int(reconnect_interval_s * 1e9)
        self.stats = ClientStats()
        self.sock: socket.socket | None = None
        self.seq = 0
        self.newest_action: npt.NDArray[np.float32] | None = None
        self.in_fallback = False
        self._fallback_since_ns = 0
        self._next_connect_ns = 0
        self._wait_ns = 0
        self._spin_backoff = 0
        self._boost = DecisionWait(boost_wait)
        # the awaited reply is read with two unpacks, past decode's general checks
        # (after the process slept, each Python-level step of the reply's path costs)
        self._reply_size = proto.HEADER_SIZE + 4 * action_size
        self._unpack_action = struct.Struct(f"<{action_size}f").unpack_from
        self._action_kind = int(proto.Kind.ACTION)
        # a flow makes its client when its set-up is done: from here on it decides
        # within a deadline, which a full collection of its start-up heap would break
        freeze_start_up_heap()
        self._connect(time.monotonic_ns())

    # ---- connection ------------------------------------------------------------------

    def _connect(self, now: int) -> bool:
        self._next_connect_ns = now + self.reconnect_interval_ns
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(self.path)
            sock.setblocking(False)
            sock.send(proto.hello(self.flow, self.policy, self.obs_size, self.action_size, now))
        except OSError as exc:
            sock.close()
            self.stats.last_error = f"connect {self.path}: {exc.strerror or exc}"
            return False
        self.sock = sock
        return True

    def _disconnect(self, reason: str) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.stats.last_error = reason

    def fileno(self) -> int:
        return -1 if self.sock is None else self.sock.fileno()

    # ---- one decision ----------------------------------------------------------------

    def send(self, observation: npt.ArrayLike, reward: float = 0.0, done: bool = False) -> int:
        """Send one observation without waiting; returns its sequence number (0: not sent)."""
        now = time.monotonic_ns()
        self.seq += 1
        self.stats.decisions += 1
        if self.sock is None and (now < self._next_connect_ns or not self._connect(now)):
            self.stats.send_failures += 1
            return 0
        assert self.sock is not None
        try:
            self.sock.send(proto.observe(self.flow, self.seq, now, observation, reward, done))
        except BlockingIOError:
            self.stats.send_failures += 1  # the agent is not reading: as good as late
            return 0
        except OSError as exc:
            self.stats.send_failures += 1
            if exc.errno in _DISCONNECTED:
                self.stats.reconnects += 1
                self._disconnect(f"agent gone: {exc.strerror}")
            return 0
        return self.seq

    def poll(self) -> Decision | None:
        """Read every waiting reply without blocking; the newest timely one, if any."""
        return self._read(0, None)

    def decide(self, observation: npt.ArrayLike, reward: float = 0.0, done: bool = False,
               *, wait_s: float | None = None) -> Decision:
        """Send ``observation`` and return its action if it arrives within the deadline
        (``wait_s`` overrides it once, e.g. for the first decision of a flow)."""
        self._boost.raise_()
        try:
            sent_ns = time.monotonic_ns()
            seq = self.send(observation, reward, done)
            deadline = sent_ns + (self.deadline_ns if wait_s is None else int(wait_s * 1e9))
            self._wait_ns = deadline - sent_ns
            decision = self._read(seq, deadline) if seq else None
            self._wait_ns = 0
        finally:
            self._boost.lower()
        if decision is not None and decision.seq == seq:
            self._timely(time.monotonic_ns())
            return decision
        self._miss(deadline)
        return Decision(None, None, seq)

    def _read(self, want_seq: int, deadline_ns: int | None) -> Decision | None:
        """Drain replies; with a deadline, wait until ``want_seq`` answers or the
        deadline passes (polling first when ``spin_s`` is set)."""
        if deadline_ns is None:
            return self._drain(want_seq, None)
        if self.spin_ns:
            return self._poll_then_sleep(want_seq, deadline_ns)
        return self._sleep(want_seq, deadline_ns)

    def _drain(self, want_seq: int, newest: Decision | None) -> Decision | None:
        """Every reply waiting now; the newest one for ``want_seq`` (or ``newest``)."""
        while self.sock is not None:
            try:
                data = self.sock.recv(proto.MAX_FRAME + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._disconnect(f"agent gone: {exc.strerror}")
                break
            if not data:
                self._disconnect("agent closed the connection")
                break
            reply = self._on_frame(data, want_seq)
            if reply is not None:
                newest = reply
        return newest

    def _sleep(self, want_seq: int, deadline_ns: int) -> Decision | None:
        """Sleep in ``select`` until a reply comes, read, repeat until ``want_seq``'s
        reply or the deadline (µs-exact, unlike SO_RCVTIMEO's ticks)."""
        newest: Decision | None = None
        while self.sock is not None:
            remaining = deadline_ns - time.monotonic_ns()
            if remaining <= 0:
                break
            ready, _, _ = select.select([self.sock], [], [], remaining / 1e9)
            if not ready:
                break
            newest = self._drain(want_seq, newest)
            if newest is not None and newest.seq == want_seq:
                break
        return newest

    def _poll_then_sleep(self, want_seq: int, deadline_ns: int) -> Decision | None:
        """Poll for ``spin_s`` (unless backing off, see ``PREEMPTED_NS``), then sleep
        in ``select``; never past the deadline."""
        newest: Decision | None = None
        spin_from = spin_end = last_poll = 0
        while self.sock is not None:
            try:
                data = self.sock.recv(proto.MAX_FRAME + 1)
            except (BlockingIOError, InterruptedError):
                if newest is not None and newest.seq == want_seq:
                    break
                now = time.monotonic_ns()
                if not spin_from:
                    spin_from = last_poll = now
                    spin_end = now
                    if self._spin_backoff:
                        self._spin_backoff -= 1
                    else:
                        spin_end = min(deadline_ns, now + self.spin_ns)
                if now < spin_end:
                    if now - last_poll <= PREEMPTED_NS:
                        last_poll = now
                        continue
                    spin_end = now  # preempted: sleep, and do not poll for a while
                    self._spin_backoff = SPIN_BACKOFF
                elif spin_end > spin_from and now >= spin_end and last_poll < spin_end:
                    self._spin_backoff = SLOW_BACKOFF  # the reply is slower than the poll
                    last_poll = spin_end
                remaining = deadline_ns - now
                if remaining <= 0:
                    break
                select.select([self.sock], [], [], remaining / 1e9)
                continue
            except OSError as exc:
                self._disconnect(f"agent gone: {exc.strerror}")
                break
            if not data:
                self._disconnect("agent closed the connection")
                break
            reply = self._on_frame(data, want_seq)
            if reply is not None:
                newest = reply
        if spin_from:
            self.stats.spin_s += (min(time.monotonic_ns(), spin_end) - spin_from) / 1e9
        return newest

    def _on_frame(self, data: bytes, want_seq: int) -> Decision | None:
        if len(data) == self._reply_size:  # the awaited ACTION, read without a Frame
            version, kind, _, flow, seq, count, t_ns, _ = proto.HEADER.unpack_from(data)
            if (version, kind, flow, seq, count) == self._awaited(want_seq):
                action = np.array(self._unpack_action(data, proto.HEADER_SIZE),
                                  dtype=np.float32)
                return self._reply(action, seq, t_ns)
        try:
            frame = proto.decode(data)
        except proto.FrameError as exc:
            self.stats.errors += 1
            self.stats.last_error = f"bad reply: {exc}"
            return None
        if frame.kind is proto.Kind.ERROR:
            self.stats.errors += 1
            self.stats.last_error = f"agent refused: {frame.text}"
            return None
        if frame.kind is not proto.Kind.ACTION or frame.flow != self.flow:
            return None
        if frame.seq != want_seq:
            self.stats.late_replies += 1  # answers a decision that already missed
            return None
        return self._reply(frame.vector, frame.seq, frame.t_ns)

    def _awaited(self, want_seq: int) -> tuple[int, int, int, int, int]:
        """(version, kind, flow, seq, count) of the reply this flow waits for."""
        return proto.VERSION, self._action_kind, self.flow, want_seq, self.action_size

    def _reply(self, action: npt.NDArray[np.float32], seq: int, t_ns: int) -> Decision | None:
        """The decision of ``want_seq``'s reply, read now: timed, or late."""
        applied_ns = time.monotonic_ns()
        latency_us = (applied_ns - t_ns) / 1e3
        if applied_ns - t_ns > max(self.deadline_ns, self._wait_ns):
            self.stats.late_replies += 1
            return None
        if self._wait_ns <= self.deadline_ns:  # a flow's first, patient decision is not timed
            self.stats.latency_us.append(latency_us)
        self.newest_action = action
        return Decision(action, latency_us, seq, applied_ns)

    def _timely(self, now: int) -> None:
        self.stats.timely += 1
        if self.in_fallback:
            self.stats.fallback_s += (now - self._fallback_since_ns) / 1e9
            self.in_fallback = False

    def _miss(self, deadline_ns: int) -> None:
        self.stats.misses += 1
        if not self.in_fallback:
            self.in_fallback = True
            self._fallback_since_ns = deadline_ns

    # ---- end -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counters for results (fallback time counted up to now)."""
        fallback = self.stats.fallback_s
        if self.in_fallback:
            fallback += max(0, time.monotonic_ns() - self._fallback_since_ns) / 1e9
        return {"flow": self.flow, "policy": self.policy, "socket": self.path,
                "deadline_us": self.deadline_ns / 1e3, "decisions": self.stats.decisions,
                "timely": self.stats.timely, "misses": self.stats.misses,
                "late_replies": self.stats.late_replies,
                "send_failures": self.stats.send_failures, "errors": self.stats.errors,
                "reconnects": self.stats.reconnects, "fallback_s": round(fallback, 6),
                "spin_s": round(self.stats.spin_s, 6),
                "wait_priority": "fifo" if self._boost.active else "normal",
                "in_fallback": self.in_fallback, "last_error": self.stats.last_error,
                "latency_us": self.stats.latency_us.recent(),
                "latency_samples": self.stats.latency_us.total}

    def write_summary(self, path: str | os.PathLike[str]) -> None:
        write_json_atomic(path, self.summary(), compact=True)

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.send(proto.encode(proto.Kind.BYE, self.flow, self.seq + 1,
                                            time.monotonic_ns()))
            self.sock.close()
            self.sock = None
        if self.in_fallback:
            self.stats.fallback_s += max(0, time.monotonic_ns() - self._fallback_since_ns) / 1e9
            self.in_fallback = False
