"""Answering the requests of one wake-up: one forward pass per round.

Each wake-up reads every waiting frame from every ready connection and answers
all OBSERVEs of the round with one forward pass (docs/design.md, "Decision
serving": batching raised throughput 1.4–2×); a flow with two requests waiting
(its first reply was late) gets them in order, in successive rounds. Replies
are sent first; latencies and transitions are recorded after the whole batch
is answered, so recording never delays a reply.
"""

from __future__ import annotations

import time

import numpy as np

from endpoints import agent_protocol as proto
from netlab.agent.policies.base import Policy
from netlab.agent.requests import Request
from netlab.agent.stats import ServingStats
from netlab.agent.transitions import TransitionBuffer
from netlab.agent.transport import Transport


def rounds(requests: list[Request]) -> list[list[Request]]:
    """``requests`` split into batches in which each flow appears at most once,
    keeping each flow's requests in order."""
    out: list[list[Request]] = []
    while requests:
        seen: set[int] = set()
        batch: list[Request] = []
        rest: list[Request] = []
        for request in requests:
            key = id(request.flow)
            (rest if key in seen else batch).append(request)
            seen.add(key)
        out.append(batch)
        requests = rest
    return out


class Batcher:
    """Runs the policy on a batch, sends the replies, records what happened."""

    def __init__(self, transport: Transport, stats: ServingStats,
                 transitions: TransitionBuffer, explore: bool) -> None:
        self.transport = transport
        self.stats = stats
        self.transitions = transitions
        self.explore = explore
        self.last_reply_ns = 0

    def answer(self, policy: Policy, requests: list[Request]) -> None:
        if len(requests) == 1:
            self.forward(policy, requests)
            return
        for batch in rounds(requests):
            self.forward(policy, batch)

    def forward(self, policy: Policy, batch: list[Request]) -> None:
        n = len(batch)
        if n == 1:
            frame = batch[0].frame
            obs = frame.vector.reshape(1, -1)
            rewards = np.array([frame.value], dtype=np.float32)
        else:
            obs = np.stack([r.frame.vector for r in batch])
            rewards = np.array([r.frame.value for r in batch], dtype=np.float32)
        out = policy.act(obs, [r.flow.state for r in batch], self.explore, rewards)
        send = self.transport.send
        encode = proto.encode
        clock = time.monotonic_ns
        replied: list[int] = []
        for i, request in enumerate(batch):
            frame = request.frame
            request.flow.state = out.states[i]
            request.flow.decisions += 1
            send(request.conn, encode(proto.Kind.ACTION, frame.flow, frame.seq, frame.t_ns,
                                      out.actions[i], value=float(out.value[i])))
            replied.append(clock())
        # after every reply of the batch is out
        t_reply = self.last_reply_ns = replied[-1]
        stats = self.stats
        for request, reply_ns in zip(batch, replied, strict=True):
            frame = request.frame
            stats.decision(frame.flow, frame.seq, frame.t_ns, request.recv_ns, reply_ns)
        stats.batch(n)
        self.transitions.append_batch(
            [r.frame.flow for r in batch], [r.frame.seq for r in batch],
            [r.frame.t_ns for r in batch], t_reply, rewards,
            [r.frame.done for r in batch], out.log_prob, out.value, obs, out.actions)
