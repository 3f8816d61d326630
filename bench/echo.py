"""The floor for decision serving: the simplest program that can answer.

One plain Python epoll echo server (one thread, SOCK_SEQPACKET, normal
priority, no model), and N client processes, each sending a 60-byte request
at R Hz from a random phase and blocking in ``recv`` for the reply. Whatever
the agent costs above this, on the same machine in the same run, is the
agent's; what this costs is the machine's (wake-ups, scheduling, syscalls).

Imported by ``bench/agent.py`` and ``bench/agent_profile.py``; also run as a
process by them (``--server`` or ``--client``), importing nothing heavy, so
that a client's own start-up and caches match the simplest program's.

With ``--weights NPZ`` the server is the simplest program that does the
agent's whole job: per request it unpacks the observation (``struct``),
log-scales it, runs a bare numpy forward pass of the saved layers (``x @ W + b``
and the activation, per layer) and packs the first output into the reply.
``bench/agent.py`` saves OpenNetLab's actor and critic there as one chain, as
the agent runs them (:mod:`netlab.agent.policies.numpy_mlp`), so this is the
floor for decode + forward + encode, not for the socket alone.

Server variants (for the wake-up profile): ``epoll`` (the floor: sleep in
``epoll_wait``), ``select`` (sleep in ``select`` on the epoll fd, then poll it:
the agent's timed sleep), ``spin`` (``epoll_wait`` with timeout 0 in a loop),
each optionally at SCHED_FIFO 40 (the agent's rung). Client variants: ``recv``
(the floor: blocking recv), ``select`` (select, then a non-blocking recv: how
a client with a deadline has to wait), ``spin`` (non-blocking recv for up to
400 µs, then select: the lab client's poll-then-sleep).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import select
import signal
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

REQUEST_BYTES = 60  # a 28-byte agent_protocol header and 8 float32s
SERVER_WAITS = ("epoll", "select", "spin")
CLIENT_WAITS = ("recv", "select", "spin")
SPIN_NS = 400_000
DEADLINE_NS = 500_000_000  # long: a late reply is still timed


HEADER = struct.Struct("<BBHIIIqf")  # endpoints.agent_protocol.HEADER


def load_forward(weights: str) -> Callable[[bytes], bytes]:
    """A reply maker: observation in, the chain's first output out (``--weights``)."""
    import numpy as np

    saved = np.load(weights)
    layers = [(saved[f"w{i}"], saved[f"b{i}"], str(saved[f"f{i}"]))
              for i in range(int(saved["n"]))]
    sigmoid = str(saved["output"]) == "sigmoid"  # the action's, after the chain
    obs_size = layers[0][0].shape[0]
    unpack = struct.Struct(f"<{obs_size}f").unpack_from
    pack = struct.Struct("<f").pack

    def reply(data: bytes) -> bytes:
        x = np.log(np.maximum(np.array(unpack(data, HEADER.size), dtype=np.float32), 1e-3))
        x = x.reshape(1, -1)
        for weight, bias, activation in layers:
            x = x @ weight
            x += bias
            if activation == "relu":
                np.maximum(x, 0, out=x)
        action = float(x[0, 0])
        if sigmoid:
            action = 1 / (1 + math.exp(-action))
        return data[:HEADER.size] + pack(action)

    return reply


def serve(path: str, wait: str = "epoll", fifo: int = 0, weights: str | None = None) -> None:
    """Echo every frame back on its connection until SIGTERM (with ``weights``: answer
    each with a forward pass instead)."""
    answer = load_forward(weights) if weights else None
    if fifo:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(128)
    listener.setblocking(False)
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN)
    conns: dict[int, socket.socket] = {}
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    epfd = ep.fileno()
    while not stop:
        if wait == "epoll":
            events = ep.poll(0.5)  # a timeout only so that SIGTERM ends it
        elif wait == "select":
            ready, _, _ = select.select([epfd], [], [], 0.5)
            events = ep.poll(0) if ready else []
        else:
            events = ep.poll(0)
        for fd, _ in events:
            if fd == listener.fileno():
                conn, _ = listener.accept()
                conn.setblocking(False)
                conns[conn.fileno()] = conn
                ep.register(conn.fileno(), select.EPOLLIN)
                continue
            conn = conns[fd]
            while True:
                try:
                    data = conn.recv(4096)
                except BlockingIOError:
                    break
                if not data:
                    ep.unregister(fd)
                    del conns[fd]
                    conn.close()
                    break
                conn.send(answer(data) if answer is not None else data)
    os.unlink(path)


def _wait_reply(sock: socket.socket, wait: str) -> bytes:
    if wait == "recv":
        return sock.recv(4096)
    deadline = time.monotonic_ns() + DEADLINE_NS
    if wait == "spin":
        spin_end = time.monotonic_ns() + SPIN_NS
        while time.monotonic_ns() < spin_end:
            try:
                return sock.recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
    while True:
        select.select([sock], [], [], max(0.0, (deadline - time.monotonic_ns()) / 1e9))
        try:
            return sock.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue


def client(path: str, rate: float, seconds: float, start_ns: int, warm_s: float, seed: int,
           out: str, wait: str = "recv", fifo: int = 0) -> None:
    """Request at ``rate`` Hz from a random phase for ``seconds`` after ``start_ns``;
    writes the round trips (µs) after the first ``warm_s``. With ``fifo``, each
    request's round trip runs at that SCHED_FIFO priority and the waits between
    them at normal priority, as a lab flow's decision waits do
    (``labcore.priority.DecisionWait``)."""
    boost, normal = os.sched_param(fifo), os.sched_param(0)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(path)
    payload = struct.pack("<BBHIIIqf8f", 1, 3, 0, seed + 1, 0, 8, 0, 0.0, *range(8))
    assert len(payload) == REQUEST_BYTES
    period_ns = int(1e9 / rate)
    rng = random.Random(seed)
    due = start_ns + int(rng.uniform(0, period_ns))
    end = start_ns + int(seconds * 1e9)
    timed_from = start_ns + int(warm_s * 1e9)
    latencies: list[float] = []
    cpu_from = None
    while due < end:
        now = time.monotonic_ns()
        if now < due:
            time.sleep((due - now) / 1e9)
        if cpu_from is None and due >= timed_from:
            cpu_from = time.process_time()
        if fifo:
            os.sched_setscheduler(0, os.SCHED_FIFO, boost)
        sent = time.monotonic_ns()
        sock.send(payload)
        _wait_reply(sock, wait)
        back = time.monotonic_ns()
        if fifo:
            os.sched_setscheduler(0, os.SCHED_OTHER, normal)
        if sent >= timed_from:
            latencies.append((back - sent) / 1e3)
        due += period_ns
    cpu_s = time.process_time() - (cpu_from or time.process_time())
    sock.close()
    Path(out).write_text(json.dumps({"latency_us": latencies, "cpu_s": cpu_s}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", metavar="PATH")
    parser.add_argument("--wait", default=None, help=f"server: {SERVER_WAITS}; client: "
                                                     f"{CLIENT_WAITS}")
    parser.add_argument("--fifo", type=int, default=0, help="server SCHED_FIFO priority")
    parser.add_argument("--client-fifo", type=int, default=0,
                        help="client: SCHED_FIFO priority of each request's round trip")
    parser.add_argument("--weights", default=None,
                        help="server: answer with a numpy forward pass of these layers (.npz)")
    parser.add_argument("--client", nargs=7, metavar=("PATH", "HZ", "SECONDS", "WARM_S",
                                                      "SEED", "START_NS", "OUT"))
    args = parser.parse_args()
    if args.server:
        serve(args.server, args.wait or "epoll", args.fifo, args.weights)
    elif args.client:
        path, rate, seconds, warm_s, seed, start_ns, out = args.client
        client(path, float(rate), float(seconds), int(start_ns), float(warm_s), int(seed), out,
               args.wait or "recv", args.client_fifo)
    else:
        parser.error("--server or --client")


if __name__ == "__main__":
    main()
