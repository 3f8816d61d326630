"""Frame codec: round trips for every kind, and each malformed shape refused with its code."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netlab.agent import frames

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(kind=st.sampled_from([frames.Kind.OBSERVE, frames.Kind.ACTION]),
       flow=st.integers(0, 2**32 - 1), seq=st.integers(0, 2**32 - 1),
       t_ns=st.integers(-(2**63), 2**63 - 1), value=finite,
       vector=st.lists(finite, max_size=300), done=st.booleans())
def test_vector_frames_round_trip(kind: frames.Kind, flow: int, seq: int, t_ns: int,
                                  value: float, vector: list[float], done: bool) -> None:
    data = frames.encode(kind, flow, seq, t_ns, vector, value=value,
                         flags=frames.FLAG_DONE if done else 0)
    frame = frames.decode(data)
    assert (frame.kind, frame.flow, frame.seq, frame.t_ns) == (kind, flow, seq, t_ns)
    assert frame.done is done
    assert frame.value == np.float32(value)
    np.testing.assert_array_equal(frame.vector, np.asarray(vector, dtype=np.float32))
    assert len(data) == frames.HEADER_SIZE + 4 * len(vector)


@given(policy=st.text(max_size=40), obs=st.integers(0, 4096), act=st.integers(0, 64))
def test_hello_round_trip(policy: str, obs: int, act: int) -> None:
    frame = frames.decode(frames.hello(7, policy, obs, act))
    assert frame.kind is frames.Kind.HELLO
    assert frame.text == policy
    assert frame.vector.tolist() == [obs, act]


def test_error_frame_carries_code_and_message() -> None:
    frame = frames.decode(frames.error(3, 9, 5, frames.ErrorCode.OUT_OF_ORDER, "seq 9 after 9"))
    assert frame.kind is frames.Kind.ERROR
    assert frame.flags == frames.ErrorCode.OUT_OF_ORDER
    assert frame.text == "seq 9 after 9"


def _refused(data: bytes) -> frames.ErrorCode:
    with pytest.raises(frames.FrameError) as caught:
        frames.decode(data)
    return caught.value.code


def test_malformed_frames_are_refused_with_their_reason() -> None:
    good = frames.observe(1, 1, 0, [1.0, 2.0])
    assert _refused(good[:10]) is frames.ErrorCode.MALFORMED
    assert _refused(good[:-1]) is frames.ErrorCode.MALFORMED  # vector cut short
    assert _refused(good + b"xx") is frames.ErrorCode.MALFORMED  # trailing bytes
    assert _refused(bytes([9]) + good[1:]) is frames.ErrorCode.VERSION
    assert _refused(good[:1] + bytes([77]) + good[2:]) is frames.ErrorCode.UNKNOWN_KIND
    huge = frames.HEADER.pack(frames.VERSION, frames.Kind.OBSERVE, 0, 1, 1,
                              frames.MAX_FLOATS + 1, 0, 0.0)
    assert _refused(huge) is frames.ErrorCode.OVERSIZED
    assert _refused(b"\0" * (frames.MAX_FRAME + 1)) is frames.ErrorCode.OVERSIZED
    nan = frames.observe(1, 1, 0, [float("nan")])
    assert _refused(nan) is frames.ErrorCode.MALFORMED
    # past SMALL_VECTOR the check is numpy's, below it Python's: both refuse
    wide = frames.observe(1, 1, 0, [0.0] * (frames.SMALL_VECTOR + 1) + [float("inf")])
    assert _refused(wide) is frames.ErrorCode.MALFORMED
    assert _refused(frames.observe(1, 1, 0, [1.0], float("nan"))) is frames.ErrorCode.MALFORMED
    assert frames.decode(frames.encode(frames.Kind.ACTION, 1, 1, 0, [float("inf")])).kind \
        is frames.Kind.ACTION  # only an observation must be finite
    with pytest.raises(frames.FrameError):
        frames.encode(frames.Kind.OBSERVE, 1, 1, 0, np.zeros(frames.MAX_FLOATS + 1))
