"""The agent's frame codec. It lives in :mod:`endpoints.agent_protocol` because
the endpoints speak it too and must not import ``netlab``; this module is the
agent-side name for it."""

from endpoints.agent_protocol import (
    FLAG_DONE,
    HEADER,
    HEADER_SIZE,
    MAX_FLOATS,
    MAX_FRAME,
    SMALL_VECTOR,
    VERSION,
    ErrorCode,
    Frame,
    FrameError,
    Kind,
    decode,
    encode,
    error,
    hello,
    observe,
)

__all__ = ["FLAG_DONE", "HEADER", "HEADER_SIZE", "MAX_FLOATS", "MAX_FRAME", "SMALL_VECTOR",
           "VERSION", "ErrorCode", "Frame", "FrameError", "Kind", "decode", "encode", "error",
           "hello", "observe"]
