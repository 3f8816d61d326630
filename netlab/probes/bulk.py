"""A TCP bulk transfer between two namespaces: what rate a path delivers.

Sender and receiver are threads of this process with sockets opened in
their namespaces; the receiver samples delivered bytes every 100 ms so the
start-up transient can be left out of the measured rate.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

from netlab.lab import netns

SAMPLE_S = 0.1
CHUNK = 64 * 1024


@dataclass(frozen=True)
class BulkResult:
    duration_s: float
    bytes_received: int
    samples: tuple[tuple[float, int], ...]  # (seconds since start, cumulative bytes)

    def rate_bps(self, skip_s: float = 0.0) -> float:
        """Goodput after leaving out the first ``skip_s`` seconds."""
        later = [(t, b) for t, b in self.samples if t >= skip_s]
        if len(later) < 2:
            return 0.0
        (t0, b0), (t1, b1) = later[0], later[-1]
        return (b1 - b0) * 8 / (t1 - t0) if t1 > t0 else 0.0


def bulk_transfer(src_ns: str, dst_ns: str, dst_addr: str, seconds: float, *,
                  port: int = 5201, cc: str | None = None) -> BulkResult:
    listener = netns.call_inside(dst_ns, lambda: socket.socket(socket.AF_INET,
                                                               socket.SOCK_STREAM))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((dst_addr, port))
    listener.listen(1)
    sender = netns.call_inside(src_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    if cc:
        sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    stop = threading.Event()
    samples: list[tuple[float, int]] = []
    received = 0

    def receive() -> None:
        nonlocal received
        conn, _ = listener.accept()
        conn.settimeout(0.2)
        buf = bytearray(CHUNK)
        start = time.monotonic()
        next_sample = start
        with conn:
            while True:
                try:
                    n = conn.recv_into(buf)
                except TimeoutError:
                    n = -1
                except ConnectionResetError:
                    break
                if n == 0:
                    break
                if n > 0:
                    received += n
                now = time.monotonic()
                if now >= next_sample:
                    samples.append((now - start, received))
                    next_sample += SAMPLE_S

    def send() -> None:
        payload = b"\0" * CHUNK
        sender.settimeout(0.5)
        sender.connect((dst_addr, port))
        while not stop.is_set():
            try:
                sender.send(payload)
            except TimeoutError:
                continue
            except OSError:
                break
        # abort rather than close: a graceful close would keep draining the
        # send buffer (megabytes) into the link after the measurement ends
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sender.close()

    receiver = threading.Thread(target=receive, name="bulk-recv", daemon=True)
    transmitter = threading.Thread(target=send, name="bulk-send", daemon=True)
    started = time.monotonic()
    receiver.start()
    transmitter.start()
    time.sleep(seconds)
    stop.set()
    transmitter.join(timeout=5)
    receiver.join(timeout=5)
    listener.close()
    return BulkResult(time.monotonic() - started, received, tuple(samples))
