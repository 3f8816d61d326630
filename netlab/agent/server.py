"""The per-host agent process: ``python -m netlab.agent --socket PATH --checkpoint CKPT``.

One thread serves every flow of the host over one SOCK_SEQPACKET Unix
socket (mode 0600); a second thread runs the control API
(:mod:`netlab.agent.control`). Each wake-up reads every waiting frame from
every ready connection and answers all OBSERVEs of the round with one
forward pass (DESIGN.md, "Decision serving": batching raised throughput
1.4–2×). When no request came for ``--warm-interval`` the model runs once on
zeros, because at realistic decision rates cold caches dominate (a small MLP
called every 10 ms took 0.16–0.31 ms instead of 0.015–0.024 ms hot).

A malformed, oversized, out-of-order or mismatched frame gets an ERROR frame
on its connection and nothing else changes: other flows (and the same
connection's later valid frames) are served as before. Replies are sent
non-blocking; a client that does not read loses replies, never the agent's time.

Exit: SIGTERM/SIGINT stop the loop, the socket file is removed and
``--stats-out`` (JSON) is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
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
from netlab.agent.stats import LatencyStats
from netlab.agent.transitions import TransitionBuffer
from netlab.errors import NetlabError
from shaping.replay.clock import raise_priority

READS_PER_CONNECTION = 64
DEFAULT_WARM_INTERVAL_S = 0.002
IDLE_WAKE_S = 0.2


@dataclass
class FlowState:
    flow: int
    last_seq: int = 0
    state: RecurrentState | None = None
    decisions: int = 0


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
                 transition_capacity: int = 65536, source: str = "") -> None:
        self.policy = policy
        self.source = source
        self.socket_path = socket_path
        self.deadline_us = deadline_s * 1e6
        self.explore = explore
        self.warm_interval_s = warm_interval_s
        info = policy.info
        self.transitions = TransitionBuffer(info.obs_size, info.action_size, transition_capacity)
        self.latency = LatencyStats()
        self.counters: dict[str, int] = {"decisions": 0, "batches": 0, "max_batch": 0,
                                         "server_misses": 0, "dropped_replies": 0,
                                         "connections": 0, "hellos": 0, "byes": 0,
                                         "warmups": 0, "reloads": 0}
        self.errors: dict[str, int] = {}
        self.started = time.time()
        self._stop = False
        self._pending: PendingReload | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.listener: socket.socket | None = None
        self.connections: dict[int, Connection] = {}

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
                "transitions": {"buffered": len(self.transitions),
                                "recorded": self.transitions.recorded,
                                "dropped": self.transitions.dropped}}

    # ---- loop ------------------------------------------------------------------------

    def serve(self) -> None:
        self.open()
        assert self.listener is not None
        selector = selectors.EpollSelector()
        selector.register(self.listener, selectors.EVENT_READ, None)
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        last_activity = time.monotonic()
        try:
            while not self._stop:
                self._take_pending()
                timeout = IDLE_WAKE_S
                if self.warm_interval_s is not None:
                    timeout = max(0.0, min(timeout, last_activity + self.warm_interval_s
                                           - time.monotonic()))
                events = selector.select(timeout)
                requests: list[Request] = []
                for key, _ in events:
                    if key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                    elif key.data is None:
                        self._accept(selector)
                    else:
                        assert isinstance(key.data, Connection)
                        self._read(key.data, selector, requests)
                if requests:
                    self._take_pending()
                    self._answer(requests)
                    last_activity = time.monotonic()
                elif self.warm_interval_s is not None and \
                        time.monotonic() - last_activity >= self.warm_interval_s:
                    self.policy.warm()
                    self.counters["warmups"] += 1
                    last_activity = time.monotonic()
        finally:
            for conn in list(self.connections.values()):
                conn.sock.close()
            self.connections.clear()
            selector.close()
            self.listener.close()
            self.listener = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

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

    def _accept(self, selector: selectors.BaseSelector) -> None:
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
            selector.register(sock, selectors.EVENT_READ, conn)
            self.counters["connections"] += 1

    def _close(self, conn: Connection, selector: selectors.BaseSelector) -> None:
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(conn.sock)
        self.connections.pop(conn.sock.fileno(), None)
        conn.sock.close()

    def _read(self, conn: Connection, selector: selectors.BaseSelector,
              requests: list[Request]) -> None:
        for _ in range(READS_PER_CONNECTION):
            try:
                data = conn.sock.recv(proto.MAX_FRAME + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(conn, selector)
                return
            if not data:
                self._close(conn, selector)
                return
            self._on_data(conn, data, requests)

    def _refuse(self, conn: Connection, frame_flow: int, seq: int, t_ns: int,
                code: proto.ErrorCode, message: str) -> None:
        conn.errors += 1
        self.errors[code.name] = self.errors.get(code.name, 0) + 1
        self._send(conn, proto.error(frame_flow, seq, t_ns, code, message))

    def _on_data(self, conn: Connection, data: bytes, requests: list[Request]) -> None:
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
                requests.append(Request(conn, state, frame))
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
        for i, request in enumerate(batch):
            frame = request.frame
            request.flow.state = out.states[i]
            request.flow.decisions += 1
            self._send(request.conn, proto.encode(proto.Kind.ACTION, frame.flow, frame.seq,
                                                  frame.t_ns, out.actions[i],
                                                  value=float(out.value[i])))
        t_reply = time.monotonic_ns()
        for request in batch:
            latency_us = (t_reply - request.frame.t_ns) / 1e3
            self.latency.add(latency_us)
            if latency_us > self.deadline_us:
                self.counters["server_misses"] += 1
        n = len(batch)
        self.counters["decisions"] += n
        self.counters["batches"] += 1
        self.counters["max_batch"] = max(self.counters["max_batch"], n)
        self.transitions.append_batch(
            [r.frame.flow for r in batch], [r.frame.seq for r in batch],
            [r.frame.t_ns for r in batch], t_reply, rewards,
            [r.frame.done for r in batch], out.log_prob, out.value, obs, out.actions)


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
                        help="run the model on zeros after this much idle time to keep caches "
                             "hot (default 2ms; 0 disables)")
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
    agent = Agent(policy, args.socket, deadline_s=args.deadline, explore=args.explore,
                  warm_interval_s=args.warm_interval or None,
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
