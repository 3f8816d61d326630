"""Wire format between an endpoint and its host's policy agent.

One frame per SOCK_SEQPACKET message (the kernel keeps message boundaries
and order on a Unix socket, so no length prefix is needed and a short read
cannot split a frame). A frame is a fixed 28-byte little-endian header and
then ``count`` float32 values; HELLO and ERROR frames carry UTF-8 text after
the floats (the policy name, the error message).

Header fields: version (u8), kind (u8), flags (u16, bit 0 = done), flow id
(u32, chosen by the client, unique per connection), sequence (u32, strictly
increasing per flow), count (u32, number of float32 values), timestamp
(i64, CLOCK_MONOTONIC ns of the request; the reply echoes it), value (f32:
the reward in an OBSERVE, the value estimate in an ACTION).

Kinds: HELLO (flow declares policy name, observation size, action size in
its two floats) → HELLO_OK or ERROR; OBSERVE (observation) → ACTION (action,
in the policy's physical units) or ERROR; BYE (the flow ends; no reply).
This module is shared: the agent (``netlab.agent``) and the endpoints both
import it, and it imports nothing from either.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

VERSION: Final = 1
HEADER: Final = struct.Struct("<BBHIIIqf")
HEADER_SIZE: Final = HEADER.size
#: Largest vector a frame may carry: an mvfst-rl observation is 221 floats,
#: so 4096 leaves room without letting one client make the agent allocate much.
MAX_FLOATS: Final = 4096
MAX_TEXT: Final = 1024
MAX_FRAME: Final = HEADER_SIZE + 4 * MAX_FLOATS + MAX_TEXT
FLAG_DONE: Final = 1
MAX_U32: Final = 0xFFFF_FFFF


class Kind(IntEnum):
    HELLO = 1
    HELLO_OK = 2
    OBSERVE = 3
    ACTION = 4
    BYE = 5
    ERROR = 6


class ErrorCode(IntEnum):
    """Carried in ERROR frames' ``flags``: what the agent refused, for programs."""

    MALFORMED = 1
    VERSION = 2
    OVERSIZED = 3
    UNKNOWN_KIND = 4
    NO_HELLO = 5
    OUT_OF_ORDER = 6
    MISMATCH = 7
    POLICY = 8
    LIMIT = 9  # too many connections to one agent, or flows on one connection


class FrameError(ValueError):
    """A frame that cannot be decoded; ``code`` says which rule it broke."""

    def __init__(self, message: str, code: ErrorCode) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Frame:
    kind: Kind
    flow: int
    seq: int
    t_ns: int
    vector: npt.NDArray[np.float32]
    value: float = 0.0
    flags: int = 0
    text: str = ""

    @property
    def done(self) -> bool:
        return bool(self.flags & FLAG_DONE)


#: Vectors up to this size are packed and unpacked with ``struct`` instead of numpy:
#: an encode and a decode are on every decision's path, and after the process slept
#: (the flow between two decisions) numpy's conversions cost ~33 µs at p50 against
#: ~7 µs for one ``Struct.pack`` (measured on the 2-vCPU VM, 4 floats, 20 ms between
#: calls).
SMALL_VECTOR: Final = 64
_VECTOR_STRUCTS: dict[int, struct.Struct] = {}


def _vector_struct(count: int) -> struct.Struct:
    """The (cached) ``struct`` of ``count`` little-endian float32s."""
    packer = _VECTOR_STRUCTS.get(count)
    if packer is None:
        packer = _VECTOR_STRUCTS[count] = struct.Struct(f"<{count}f")
    return packer


def _floats(vector: npt.ArrayLike) -> tuple[int, bytes]:
    """(count, little-endian float32 bytes) of a vector, flattened."""
    values: Any = None
    if isinstance(vector, np.ndarray):
        if vector.ndim == 1 and vector.size <= SMALL_VECTOR:
            values = vector.tolist()
    elif isinstance(vector, (list, tuple)) and len(vector) <= SMALL_VECTOR:
        values = vector
    if values is not None:
        count = len(values)
        try:
            return count, _vector_struct(count).pack(*values)
        except (struct.error, OverflowError, TypeError):
            pass  # nested, non-numeric or beyond float32: numpy's rules (inf, errors)
    floats = np.ascontiguousarray(vector, dtype="<f4").ravel()
    if floats.size > MAX_FLOATS:
        raise FrameError(f"{floats.size} floats exceed the limit of {MAX_FLOATS}",
                         ErrorCode.OVERSIZED)
    return floats.size, floats.tobytes()


def encode(kind: Kind, flow: int, seq: int, t_ns: int,
           vector: npt.ArrayLike | None = None, *, value: float = 0.0, flags: int = 0,
           text: str = "") -> bytes:
    """One frame as bytes; raises ``FrameError`` for what no peer would accept."""
    count, floats = (0, b"") if vector is None else _floats(vector)
    header = HEADER.pack(VERSION, int(kind), flags & 0xFFFF, flow & MAX_U32, seq & MAX_U32,
                         count, t_ns, value)
    if not text:
        return header + floats
    payload = text.encode("utf-8")
    if len(payload) > MAX_TEXT:
        payload = payload[:MAX_TEXT]
    return header + floats + payload


def decode(data: bytes | bytearray | memoryview) -> Frame:
    """The frame in ``data``; ``FrameError`` for anything malformed."""
    if len(data) > MAX_FRAME:
        raise FrameError(f"frame of {len(data)} bytes exceeds {MAX_FRAME}", ErrorCode.OVERSIZED)
    if len(data) < HEADER_SIZE:
        raise FrameError(f"frame of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte "
                         "header", ErrorCode.MALFORMED)
    version, kind, flags, flow, seq, count, t_ns, value = HEADER.unpack_from(data)
    if version != VERSION:
        raise FrameError(f"protocol version {version}, this side speaks {VERSION}",
                         ErrorCode.VERSION)
    try:
        frame_kind = Kind(kind)
    except ValueError:
        raise FrameError(f"unknown frame kind {kind}", ErrorCode.UNKNOWN_KIND) from None
    if count > MAX_FLOATS:
        raise FrameError(f"{count} floats exceed the limit of {MAX_FLOATS}", ErrorCode.OVERSIZED)
    end = HEADER_SIZE + 4 * count
    if len(data) < end:
        raise FrameError(f"header announces {count} floats, frame holds "
                         f"{(len(data) - HEADER_SIZE) // 4}", ErrorCode.MALFORMED)
    rest = bytes(data[end:])
    if rest and frame_kind not in (Kind.HELLO, Kind.HELLO_OK, Kind.ERROR):
        raise FrameError(f"{len(rest)} trailing bytes after the vector", ErrorCode.MALFORMED)
    try:
        text = rest.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("text is not UTF-8", ErrorCode.MALFORMED) from None
    small = count <= SMALL_VECTOR  # one numpy call, not five (see SMALL_VECTOR)
    if small:
        values = _vector_struct(count).unpack_from(data, HEADER_SIZE)
        vector = np.array(values, dtype=np.float32)
    else:
        vector = np.frombuffer(data, dtype="<f4", count=count,
                               offset=HEADER_SIZE).astype(np.float32)
    if frame_kind is Kind.OBSERVE and not (
            math.isfinite(value)
            and (all(map(math.isfinite, values)) if small else np.isfinite(vector).all())):
        raise FrameError("observation or reward is not finite", ErrorCode.MALFORMED)
    return Frame(frame_kind, flow, seq, t_ns, vector, float(value), flags, text)


def hello(flow: int, policy: str, obs_size: int, action_size: int, t_ns: int = 0) -> bytes:
    return encode(Kind.HELLO, flow, 0, t_ns, [obs_size, action_size], text=policy)


def observe(flow: int, seq: int, t_ns: int, observation: npt.ArrayLike, reward: float = 0.0,
            done: bool = False) -> bytes:
    return encode(Kind.OBSERVE, flow, seq, t_ns, observation, value=reward,
                  flags=FLAG_DONE if done else 0)


def error(flow: int, seq: int, t_ns: int, code: ErrorCode, message: str) -> bytes:
    return encode(Kind.ERROR, flow, seq, t_ns, flags=int(code), text=message)
