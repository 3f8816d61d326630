"""The transition ring keeps what it was given, row by row or in bulk, oldest first."""

from __future__ import annotations

import numpy as np

from netlab.agent.transitions import SMALL_BATCH, TransitionBuffer


def _append(ring: TransitionBuffer, first: int, n: int) -> None:
    flows = np.arange(first, first + n)
    ring.append_batch(flows, flows + 1, flows * 10, 7, flows * 0.5, flows % 2 == 1,
                      -flows * 0.25, flows * 2.0, np.stack([flows, -flows, flows, 1 + flows],
                                                           axis=1).astype(np.float32),
                      (flows * 3.0).reshape(-1, 1))


def test_small_and_large_batches_are_recorded_alike_and_the_oldest_dropped() -> None:
    ring = TransitionBuffer(4, 1, capacity=40)
    first = 0
    for n in (1, 3, SMALL_BATCH, SMALL_BATCH + 1, 30, 2):  # 53 rows through 40 slots
        _append(ring, first, n)
        first += n
    assert ring.recorded == 53 and ring.dropped == 13 and len(ring) == 40
    rows = ring.drain()
    flows = np.arange(13, 53)
    assert rows["flow"].tolist() == flows.tolist()
    assert rows["seq"].tolist() == (flows + 1).tolist()
    assert rows["t_request_ns"].tolist() == (flows * 10).tolist()
    assert (rows["t_reply_ns"] == 7).all()
    np.testing.assert_array_equal(rows["reward"], flows * 0.5)
    assert rows["done"].tolist() == (flows % 2).tolist()
    np.testing.assert_array_equal(rows["log_prob"], -flows * 0.25)
    np.testing.assert_array_equal(rows["value"], flows * 2.0)
    np.testing.assert_array_equal(rows["obs"][:, 1], -flows)
    np.testing.assert_array_equal(rows["action"][:, 0], flows * 3.0)
    assert len(ring) == 0 and len(ring.drain()) == 0
