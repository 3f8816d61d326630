"""Admission of the frames a connection sends: HELLO declares a flow, OBSERVE
asks for a decision, BYE ends a flow.

A malformed, oversized, out-of-order or mismatched frame gets an ERROR frame on
its connection and nothing else changes: other flows (and the same
connection's later valid frames) are served as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from endpoints import agent_protocol as proto
from netlab.agent.arrivals import ArrivalPredictor
from netlab.agent.transport import Connection, Transport

if TYPE_CHECKING:
    from netlab.agent.policies.base import PolicyInfo, RecurrentState

#: Flows one connection may declare: the cap keeps a misbehaving client from
#: growing the agent's memory.
MAX_FLOWS_PER_CONNECTION = 64
#: A request's own send time is trusted for arrival prediction when it lies within
#: this long before it was read (a clean periodic signal; the read time moves with
#: the agent's own business).
PLAUSIBLE_SEND_NS = 1_000_000_000


@dataclass(slots=True)
class FlowState:
    flow: int
    last_seq: int = 0
    state: RecurrentState | None = None
    decisions: int = 0
    #: when this flow's next request is due (only when the agent schedules wake-ups)
    arrivals: ArrivalPredictor | None = None
    last_frame: bytes = b""  # the newest OBSERVE, what a warm-up rehearses


@dataclass(slots=True)
class Request:
    conn: Connection
    flow: FlowState
    frame: proto.Frame
    recv_ns: int


class Admission:
    """Turns each frame read into a :class:`Request`, a flow's start or end, or a refusal."""

    def __init__(self, transport: Transport, counters: dict[str, int],
                 errors: dict[str, int], info: Callable[[], PolicyInfo],
                 track_arrivals: bool) -> None:
        self.transport = transport
        self.counters = counters
        self.errors = errors
        self.info = info  # the served policy's, read per frame (a reload may change it)
        self.track_arrivals = track_arrivals

    def refuse(self, conn: Connection, frame_flow: int, seq: int, t_ns: int,
               code: proto.ErrorCode, message: str) -> None:
        conn.errors += 1
        self.errors[code.name] = self.errors.get(code.name, 0) + 1
        self.transport.send(conn, proto.error(frame_flow, seq, t_ns, code, message))

    def on_frame(self, conn: Connection, data: bytes, recv_ns: int,
                 requests: list[Request]) -> None:
        try:
            frame = proto.decode(data)
        except proto.FrameError as exc:
            flow = seq = t_ns = 0
            if len(data) >= proto.HEADER_SIZE:
                _, _, _, flow, seq, _, t_ns, _ = proto.HEADER.unpack_from(data)
            self.refuse(conn, flow, seq, t_ns, exc.code, str(exc))
            return
        kind = frame.kind
        if kind is proto.Kind.OBSERVE:
            self._observe(conn, frame, data, recv_ns, requests)
        elif kind is proto.Kind.HELLO:
            self._hello(conn, frame)
        elif kind is proto.Kind.BYE:
            if conn.flows.pop(frame.flow, None) is not None:
                self.counters["byes"] += 1
        else:
            self.refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.UNKNOWN_KIND,
                        f"{kind.name} is not a request")

    def _hello(self, conn: Connection, frame: proto.Frame) -> None:
        info = self.info()
        wanted = frame.vector.astype(int).tolist() if frame.vector.size == 2 else None
        if wanted != [info.obs_size, info.action_size] or frame.text not in ("", info.contract):
            self.refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.MISMATCH,
                        f"this agent serves {info.contract} {info.obs_size}→"
                        f"{info.action_size}; flow asked for {frame.text or '(any)'} {wanted}")
            return
        if frame.flow not in conn.flows and len(conn.flows) >= MAX_FLOWS_PER_CONNECTION:
            self.counters["refused_flows"] += 1
            self.transport.note_limit(f"refused a flow: at most {MAX_FLOWS_PER_CONNECTION} "
                                      "flows per connection")
            self.refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.LIMIT,
                        f"at most {MAX_FLOWS_PER_CONNECTION} flows per connection; "
                        "send BYE for ended flows or open another connection")
            return
        conn.flows[frame.flow] = FlowState(
            frame.flow, arrivals=ArrivalPredictor() if self.track_arrivals else None)
        self.counters["hellos"] += 1
        self.transport.send(conn, proto.encode(proto.Kind.HELLO_OK, frame.flow, 0, frame.t_ns,
                                               [info.obs_size, info.action_size],
                                               text=info.contract))

    def _observe(self, conn: Connection, frame: proto.Frame, data: bytes, recv_ns: int,
                 requests: list[Request]) -> None:
        state = conn.flows.get(frame.flow)
        if state is None:
            self.refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.NO_HELLO,
                        f"flow {frame.flow} sent OBSERVE before HELLO")
            return
        if frame.seq <= state.last_seq:
            self.refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.OUT_OF_ORDER,
                        f"sequence {frame.seq} after {state.last_seq}")
            return
        obs_size = self.info().obs_size
        if frame.vector.size != obs_size:
            self.refuse(conn, frame.flow, frame.seq, frame.t_ns, proto.ErrorCode.MISMATCH,
                        f"{frame.vector.size} observation values, policy takes {obs_size}")
            return
        state.last_seq = frame.seq
        if state.arrivals is not None:
            state.last_frame = data
        requests.append(Request(conn, state, frame, recv_ns))


def learn_arrivals(requests: list[Request], polled: bool) -> None:
    """Each request's flow learns when it came (after the replies: the sorting this
    takes is no part of any round trip)."""
    for request in requests:
        if request.flow.arrivals is not None:
            learn_arrival(request.flow.arrivals, request.recv_ns, request.frame.t_ns, polled)


def learn_arrival(arrivals: ArrivalPredictor, recv_ns: int, t_ns: int, polled: bool) -> None:
    """A flow's request, sent at ``t_ns`` by its own clock and read at ``recv_ns``:
    the send time is used if plausible; how long requests take from it to the
    socket is learnt apart, from requests read while polling (their read times are
    exact)."""
    sent = t_ns if recv_ns - PLAUSIBLE_SEND_NS < t_ns <= recv_ns else recv_ns
    if polled:
        arrivals.reached(recv_ns - sent)
    arrivals.arrived(sent)
