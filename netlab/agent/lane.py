"""The fast lane: a lone OBSERVE is answered the moment it is read.

Most wake-ups of the serving loop find one request (8 flows at 50 Hz from
random phases: 10 867 rounds for 10 979 decisions in a lab run). For a policy
with a single-decision path (:attr:`netlab.agent.policies.base.Policy.single`)
and no exploration, such a request skips the general path: no ``Frame``,
``Request`` or array is built; the header and observation are unpacked with
``struct``, checked as :func:`endpoints.agent_protocol.decode` and
:mod:`netlab.agent.requests` check them, the policy runs on Python floats and
the reply is packed and sent before the connection is read again. Recording
(latency stats, the transition ring, arrival times) follows every reply of the
wake-up, as in :mod:`netlab.agent.batching`.

Measured in the lab where it matters (8 RTC flows at 50 Hz, OpenNetLab's
model, ``bench/agent_lab.py``): the general path took read → replied p50 65 µs,
of which decode 9, admission 8, the policy 30 and encode and send 16.

Anything else (another kind, a size, version or sequence the checks refuse,
a non-finite value, an unknown flow, a reload waiting) goes the general way,
which answers or refuses it exactly as before; the lane changes nothing before
it has decided to answer. The schedule's rehearsals run :meth:`FastLane.compute`,
so a warm-up heats the code that serves.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Sequence

from endpoints import agent_protocol as proto
from netlab.agent.policies.base import Policy, SingleDecision
from netlab.agent.requests import FlowState, learn_arrival
from netlab.agent.stats import ServingStats
from netlab.agent.transitions import TransitionBuffer
from netlab.agent.transport import Connection, Transport

_HEADER = proto.HEADER
_OBSERVE, _ACTION, _VERSION = int(proto.Kind.OBSERVE), int(proto.Kind.ACTION), proto.VERSION
#: (the flow, or None when rehearsing; the unpacked header; the observation; the
#: decision; the reply frame)
Answer = tuple[FlowState | None, tuple[int, int, int, int, int, int, int, float],
               tuple[float, ...], SingleDecision, bytes]


class FastLane:
    """Answers a lone request of a plain deterministic policy (see the module docstring)."""

    def __init__(self, transport: Transport, stats: ServingStats,
                 transitions: TransitionBuffer, explore: bool = False) -> None:
        self.transport = transport
        self.stats = stats
        self.transitions = transitions
        self.explore = explore  # an exploring agent samples: never the lane's mean
        self.last_reply_ns = 0
        self._answered: list[tuple[Answer, bytes, int, int]] = []
        self._single: Callable[[Sequence[float]], SingleDecision] | None = None
        self._frame_size = 0
        self._unpack_observation = struct.Struct("<0f").unpack_from
        self._pack_action = struct.Struct("<0f").pack
        self._action_size = 0

    def serve(self, policy: Policy) -> bool:
        """Take ``policy`` (after a start or a reload); whether the lane can serve it."""
        obs_size, action_size = policy.info.obs_size, policy.info.action_size
        self._single = None
        if self.explore or policy.single is None or obs_size > proto.SMALL_VECTOR:
            return False
        self._single = policy.single
        self._frame_size = proto.HEADER_SIZE + 4 * obs_size
        self._unpack_observation = struct.Struct(f"<{obs_size}f").unpack_from
        self._pack_action = struct.Struct(f"<{action_size}f").pack
        self._action_size = action_size
        return True

    def compute(self, conn_flows: dict[int, FlowState] | None, data: bytes) -> Answer | None:
        """(flow, header, observation, decision, reply) for an OBSERVE the lane may answer, or
        None. With ``conn_flows`` (serving) the flow must be known and the sequence
        new; None (rehearsing) skips those checks and the flow is None. Changes
        nothing."""
        single = self._single
        if single is None or len(data) != self._frame_size:
            return None
        header = _HEADER.unpack_from(data)
        version, kind, _, flow, seq, _, t_ns, reward = header
        if version != _VERSION or kind != _OBSERVE:
            return None
        state = None
        if conn_flows is not None:
            state = conn_flows.get(flow)
            if state is None or seq <= state.last_seq:
                return None
        values = self._unpack_observation(data, proto.HEADER_SIZE)
        if not (math.isfinite(reward) and all(map(math.isfinite, values))):
            return None
        decision = single(values)
        actions, _, value = decision
        try:  # packed here: proto.encode's general checks cost about 8 µs at p50 in the
            # 8 x 50 Hz lab (read -> replied 38-42 against 46-51 µs, A/B in one hour)
            reply = _HEADER.pack(_VERSION, _ACTION, 0, flow, seq, self._action_size, t_ns,
                                 value) + self._pack_action(*actions)
        except (struct.error, OverflowError):  # beyond float32: numpy's rules (inf)
            reply = proto.encode(proto.Kind.ACTION, flow, seq, t_ns, actions, value=value)
        return state, header, values, decision, reply

    def answer(self, conn: Connection, data: bytes, recv_ns: int) -> bool:
        """Answer ``data`` now if the lane may (see :meth:`compute`); whether it did.
        What happened is recorded by :meth:`record`, once the wake-up's replies are out."""
        found = self.compute(conn.flows, data)
        if found is None:
            return False
        state = found[0]
        assert state is not None
        state.last_seq = found[1][4]
        self.transport.send(conn, found[4])
        self.last_reply_ns = time.monotonic_ns()
        self._answered.append((found, data, recv_ns, self.last_reply_ns))
        return True

    def record(self, polled: bool) -> bool:
        """Latency stats, transitions and arrival times of the answers since the last
        call (as :mod:`netlab.agent.batching` records a round); whether there were any."""
        if not self._answered:
            return False
        stats, transitions = self.stats, self.transitions
        for found, data, recv_ns, reply_ns in self._answered:
            state, (_, _, flags, flow, seq, _, t_ns, reward), values, decision, _ = found
            assert state is not None
            actions, log_prob, value = decision
            state.decisions += 1
            stats.decision(flow, seq, t_ns, recv_ns, reply_ns)
            stats.batch(1)
            stats.counters["lane_answers"] += 1
            transitions.append_one(flow, seq, t_ns, reply_ns, reward, flags & proto.FLAG_DONE,
                                   log_prob, value, values, actions)
            if state.arrivals is not None:
                state.last_frame = data
                learn_arrival(state.arrivals, recv_ns, t_ns, polled)
        self._answered.clear()
        return True

    def rehearse(self, data: bytes) -> bool:
        """Serve ``data`` without sending or keeping anything; False if the lane
        would not serve it (the caller rehearses the general path then)."""
        return self.compute(None, data) is not None
