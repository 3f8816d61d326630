#!/usr/bin/env python3
"""A WebRTC video call with aiortc (VP8 over SRTP, GCC-style REMB congestion
control), as two unmodified programs netlab runs as ``kind: command`` flows.

    python3 call.py answer --port 8800 --duration 30       # in one host
    python3 call.py offer --peer 10.0.0.2:8800 --duration 25  # in the other

Signalling is one JSON offer and one JSON answer over a TCP connection (no
STUN/TURN: both hosts are on the lab's links). The caller sends a synthetic
640x480 video at 30 frames/s; the callee prints one JSON line per second
(frames and bytes received, the frame rate and size it saw) and a summary at
the end. Needs ``aiortc`` and ``numpy`` (``pip install aiortc numpy``; netlab's
``bench`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import sys
import time

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

WIDTH, HEIGHT, FPS = 640, 480, 30


class MovingPattern(VideoStreamTrack):
    """Frames that change every time (a moving gradient), so the encoder has
    real work and the bitrate follows what congestion control allows."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        x = np.arange(WIDTH, dtype=np.uint16)
        y = np.arange(HEIGHT, dtype=np.uint16)[:, None]
        self.base = (x + y).astype(np.uint16)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.count += 1
        shift = (self.count * 7) % 256
        plane = ((self.base + shift) % 256).astype(np.uint8)
        noise = np.random.default_rng(self.count).integers(0, 32, plane.shape, dtype=np.uint8)
        image = np.stack([plane, plane ^ noise, plane + np.uint8(85)], axis=2)  # wraps
        frame = VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base or fractions.Fraction(1, 90000)
        return frame


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    message: dict[str, str]) -> dict[str, str]:
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()
    line = await reader.readline()
    reply: dict[str, str] = json.loads(line)
    return reply


async def _consume(track: MediaStreamTrack, duration: float) -> None:
    start = time.monotonic()
    second, frames, pixels = 0, 0, 0
    total_frames = 0
    while time.monotonic() - start < duration:
        try:
            frame = await asyncio.wait_for(track.recv(), timeout=max(0.1, duration))
        except (TimeoutError, MediaStreamError):
            break
        now = int(time.monotonic() - start)
        if now != second:
            print(json.dumps({"t_s": second, "frames": frames,
                              "mean_pixels": pixels // max(1, frames)}), flush=True)
            second, frames, pixels = now, 0, 0
        frames += 1
        total_frames += 1
        pixels += frame.width * frame.height
    print(json.dumps({"summary": True, "frames": total_frames,
                      "seconds": round(time.monotonic() - start, 2)}), flush=True)


async def answer(port: int, duration: float) -> None:
    done = asyncio.Event()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        consumers: list[asyncio.Task[None]] = []

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            consumers.append(asyncio.ensure_future(_consume(track, duration)))

        offer = json.loads(await reader.readline())
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        await pc.setLocalDescription(await pc.createAnswer())
        local = pc.localDescription
        writer.write(json.dumps({"sdp": local.sdp, "type": local.type}).encode() + b"\n")
        await writer.drain()
        await asyncio.sleep(duration)
        for task in consumers:
            task.cancel()
        await pc.close()
        writer.close()
        done.set()

    server = await asyncio.start_server(on_connect, "0.0.0.0", port)
    async with server:
        try:
            await asyncio.wait_for(done.wait(), timeout=duration + 30)
        except TimeoutError:
            print(json.dumps({"error": "no caller"}), flush=True)


async def offer(peer: str, duration: float) -> None:
    host, port = peer.rsplit(":", 1)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(MovingPattern())
    await pc.setLocalDescription(await pc.createOffer())
    reader, writer = await asyncio.open_connection(host, int(port))
    local = pc.localDescription
    reply = await _exchange(reader, writer, {"sdp": local.sdp, "type": local.type})
    await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], reply["type"]))
    await asyncio.sleep(duration)
    await pc.close()
    writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    a = sub.add_parser("answer")
    a.add_argument("--port", type=int, default=8800)
    a.add_argument("--duration", type=float, default=30.0)
    o = sub.add_parser("offer")
    o.add_argument("--peer", required=True, help="HOST:PORT of the answering side")
    o.add_argument("--duration", type=float, default=25.0)
    args = parser.parse_args()
    if args.role == "answer":
        asyncio.run(answer(args.port, args.duration))
    else:
        asyncio.run(offer(args.peer, args.duration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
