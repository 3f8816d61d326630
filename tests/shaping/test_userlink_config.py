"""Spec round trip to the link process, control messages, and the binary logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shaping.spec import LinkShape, QueueLimit
from shaping.userlink.config import DirectionConfig, UserLinkSpec, spec_from_json, spec_to_json
from shaping.userlink.control import control_path, decode_change, encode_change
from shaping.userlink.errors import UserLinkError
from shaping.userlink.log import (
    ChangeLogWriter,
    PacketLogWriter,
    read_change_log,
    read_packet_log,
)


def test_spec_survives_the_trip_to_the_link_process(tmp_path: Path) -> None:
    shape = LinkShape(rate_bps=5_000_000, delay_s=0.02, jitter_s=0.001, loss=0.01,
                      queue=QueueLimit(bytes=30_000))
    a_to_b = DirectionConfig(
        shape,
        schedule=((0.0, shape), (1.5, shape.with_rate(1_000_000))),
        loop_s=3.0,
        gilbert=(0.01, 0.3, 0.9, 0.001),
        seed=42,
        queue_policy="drophead",
        reorder=True,
        burst_bytes=3028,
    )
    b_to_a = DirectionConfig(LinkShape(queue=QueueLimit(packets=50)), opportunities_ms=(1, 1, 5))
    spec = UserLinkSpec("l1", "ns-a", "ia", "ns-b", "ib", a_to_b, b_to_a, tmp_path)
    assert spec_from_json(spec_to_json(spec)) == spec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opportunities_ms": ()}, "needs a line"),
        ({"opportunities_ms": (3, 2, 5)}, "non-decreasing"),
        ({"opportunities_ms": (0, 0)}, "nonzero"),
        ({"gilbert": (0.1, 1.5, 1.0, 0.0)}, "probabilities"),
        ({"schedule": ((2.0, LinkShape()),), "loop_s": 1.0}, "< loop_s"),
        ({"queue_policy": "red"}, "droptail"),
    ],
)
def test_direction_config_rejects_what_the_link_cannot_do(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DirectionConfig(LinkShape(), **kwargs)  # type: ignore[arg-type]


def test_change_messages_round_trip_and_bad_ones_are_refused() -> None:
    shape = LinkShape(rate_bps=3_000_000, delay_s=0.05, queue=QueueLimit(packets=20))
    assert decode_change(encode_change("b_to_a", shape, 123)) == ("b_to_a", shape, 123)
    with pytest.raises(ValueError, match="direction"):
        decode_change(b'{"direction": "up", "shape": {}, "scheduled_ns": 1}')
    with pytest.raises(ValueError, match="malformed"):
        decode_change(b"{not json")


def test_control_path_too_long_for_a_unix_socket_is_explained(tmp_path: Path) -> None:
    with pytest.raises(UserLinkError) as info:
        control_path(tmp_path / ("d" * 120), "link")
    assert info.value.fix is not None and "shorter" in info.value.fix


def test_logs_read_back_as_numpy_records(tmp_path: Path) -> None:
    packets = PacketLogWriter(tmp_path / "p.pkt")
    packets.record(100, 300, 290, 1500, 0)
    packets.record(200, -1, -1, 40, 3)
    packets.close()
    log = read_packet_log(tmp_path / "p.pkt")
    assert log.dtype.itemsize == 32
    assert log["arrival_ns"].tolist() == [100, 200]
    assert log["departure_ns"].tolist() == [300, -1]
    assert log["due_ns"].tolist() == [290, -1]
    assert log["size"].tolist() == [1500, 40]
    assert log["reason"].tolist() == [0, 3]
    changes = ChangeLogWriter(tmp_path / "c.chg")
    changes.record(10, 12, LinkShape(rate_bps=None, delay_s=0.02, loss=0.5))
    changes.record(20, 21, LinkShape(rate_bps=7, queue=QueueLimit(bytes=900)))
    changes.close()
    chg = read_change_log(tmp_path / "c.chg")
    assert chg["rate_bps"].tolist() == [-1, 7]
    assert np.allclose(chg["delay_s"], [0.02, 0.0]) and np.allclose(chg["loss"], [0.5, 0.0])
    assert chg["queue_bytes"].tolist() == [-1, 900] and chg["queue_packets"].tolist() == [-1, -1]
    with pytest.raises(ValueError, match="not a user-space link log"):
        read_packet_log(tmp_path / "c.chg")
