"""The OpenNetLab challenge network score, computed exactly as their code does.

Source: ``NetEvalMethodNormal.eval`` in ``metrics/utils/net_eval_method.py``
of https://github.com/OpenNetLab/Challenge-Environment (commit
1f35503088bc3ec58c56e1811bc482432eaa7455, the version with
``max_delay=400, ground_recv_rate=500`` that ``metrics/eval_network.py``
calls), over the per-packet records AlphaRTC's ``remote_estimator_proxy.cc``
logs at the receiver, in arrival order. Step by step:

* per SSRC, each packet's delay is ``arrivalTimeMs - sendTimestamp`` minus
  the first packet's (so the first is 0 and clock offsets cancel); the list
  is capped at ``max_delay`` (400 ms) from above only;
  ``delay_score = (max_delay - p95(capped)) / (max_delay - min(uncapped))``
  with ``np.percentile``'s default (linear) interpolation; the delay score
  is the mean over SSRCs;
* per SSRC, ``avg_recv_rate = bytes / (arrival - first arrival)`` in bytes
  per ms, where bytes sums ``payloadSize`` of every packet up to the last
  one whose arrival differs from the first's (the first packet's bytes
  included); SSRCs with rate 0 are left out, and
  ``recv_rate_score = min(1, mean(rates) / ground_recv_rate)``;
* ``loss_count`` adds ``max(0, seq - previous seq of that SSRC - 1)`` per
  packet (RTP sequence numbers as logged, no unwrapping), and
  ``loss_rate = loss_count / (loss_count + number of packets)``;
* ``network = 100·0.2·delay_score + 100·0.2·recv_rate_score + 100·0.3·(1 - loss_rate)``
  (so the best possible is 70).

Quirks kept on purpose, because the point is to match their numbers: a
reordered packet counts as a loss (1, 3, 2, 4 gives two), a loss across a
sequence wrap is not seen, and with no SSRC at a positive rate the receive
score is 1 (their ``min(1, nan)``). The lab's own ``loss`` metric
(:mod:`endpoints.metrics.loss`) does not share these quirks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: OpenNetLab's defaults (eval_network.py argparse): ms, and bytes per ms.
MAX_DELAY_MS = 400.0
GROUND_RECV_RATE = 500.0
#: Points for the delay, receive-rate and loss terms (net_eval_method.py: 100 x 0.2, 0.2, 0.3).
NETWORK_WEIGHTS = (100 * 0.2, 100 * 0.2, 100 * 0.3)


def network_points(delay_score: float, recv_rate_score: float, loss_rate: float) -> float:
    """Their weighted sum of the three terms (each in [0, 1]; the best is 70).

    The one formula that this score, the capacity-normalised score and the
    step rewards (:mod:`endpoints.metrics.objectives`) weigh their terms with."""
    w_delay, w_rate, w_loss = NETWORK_WEIGHTS
    return w_delay * delay_score + w_rate * recv_rate_score + w_loss * (1 - loss_rate)


def bps_to_bytes_per_ms(rate_bps: float) -> float:
    """OpenNetLab's receive-rate unit: bytes per millisecond (= kB/s)."""
    return rate_bps / 8.0 / 1000.0


@dataclass(frozen=True)
class SsrcScore:
    ssrc: int
    packets: int
    min_delay_ms: float  # relative to the first packet (<= 0)
    delay_p95_ms: float  # of the capped, relative delays
    delay_score: float
    avg_recv_rate: float  # bytes per ms


@dataclass(frozen=True)
class NetworkScore:
    network: float
    delay_score: float
    recv_rate_score: float
    loss_rate: float
    loss_count: int
    packets: int
    max_delay_ms: float
    ground_recv_rate: float
    per_ssrc: tuple[SsrcScore, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"network": self.network, "delay_score": self.delay_score,
                "recv_rate_score": self.recv_rate_score, "loss_rate": self.loss_rate,
                "loss_count": self.loss_count, "packets": self.packets,
                "max_delay_ms": self.max_delay_ms, "ground_recv_rate": self.ground_recv_rate}


class _Stream:
    __slots__ = ("avg_recv_rate", "delays", "received_nbytes", "start_recv_time", "time_delta")

    def __init__(self, first_delay: float, arrival: float) -> None:
        self.time_delta = -first_delay
        self.delays: list[float] = []
        self.received_nbytes = 0.0
        self.start_recv_time = arrival
        self.avg_recv_rate = 0.0


def network_score(ssrc: npt.ArrayLike, sequence_number: npt.ArrayLike,
                  send_time_ms: npt.ArrayLike, arrival_time_ms: npt.ArrayLike,
                  payload_size: npt.ArrayLike, *, max_delay_ms: float = MAX_DELAY_MS,
                  ground_recv_rate: float = GROUND_RECV_RATE) -> NetworkScore:
    """The score of received packets given in arrival order (one entry per
    packet in each array; ``ground_recv_rate`` in bytes per ms)."""
    ssrcs = np.asarray(ssrc).tolist()
    seqs = np.asarray(sequence_number).tolist()
    sends = np.asarray(send_time_ms).tolist()
    arrivals = np.asarray(arrival_time_ms).tolist()
    sizes = np.asarray(payload_size).tolist()
    count = len(ssrcs)
    if not count == len(seqs) == len(sends) == len(arrivals) == len(sizes):
        raise ValueError("the packet arrays must all have one entry per packet")
    if count == 0:
        raise ValueError("no packets: the network score needs at least one received packet")
    if ground_recv_rate <= 0:
        raise ValueError(f"ground_recv_rate must be positive, got {ground_recv_rate}")

    streams: dict[int, _Stream] = {}
    last_seq: dict[int, int] = {}
    loss_count = 0
    for key, seq, send, arrival, size in zip(ssrcs, seqs, sends, arrivals, sizes, strict=True):
        delay = arrival - send
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = _Stream(delay, arrival)
        if key in last_seq:
            loss_count += max(0, seq - last_seq[key] - 1)
        last_seq[key] = seq
        stream.delays.append(stream.time_delta + delay)
        stream.received_nbytes += size
        if arrival != stream.start_recv_time:
            stream.avg_recv_rate = stream.received_nbytes / (arrival - stream.start_recv_time)

    per_ssrc = []
    for key, stream in streams.items():
        min_delay = min(stream.delays)
        capped = [min(max_delay_ms, delay) for delay in stream.delays]
        p95 = float(np.percentile(capped, 95))
        per_ssrc.append(SsrcScore(ssrc=int(key), packets=len(stream.delays),
                                  min_delay_ms=float(min_delay), delay_p95_ms=p95,
                                  delay_score=(max_delay_ms - p95) / (max_delay_ms - min_delay),
                                  avg_recv_rate=float(stream.avg_recv_rate)))
    delay_score = float(np.mean([entry.delay_score for entry in per_ssrc]))
    rates = [entry.avg_recv_rate for entry in per_ssrc if entry.avg_recv_rate > 0]
    # min(1, nan) is 1 in Python: their result when no stream has a rate.
    recv_rate_score = float(min(1.0, float(np.mean(rates)) / ground_recv_rate)) if rates else 1.0
    loss_rate = loss_count / (loss_count + count)
    network = network_points(delay_score, recv_rate_score, loss_rate)
    return NetworkScore(network=float(network), delay_score=delay_score,
                        recv_rate_score=recv_rate_score, loss_rate=float(loss_rate),
                        loss_count=loss_count, packets=count, max_delay_ms=max_delay_ms,
                        ground_recv_rate=ground_recv_rate, per_ssrc=tuple(per_ssrc))


def network_score_from_packets(receiver_packets: npt.NDArray[Any], *, integer_ms: bool = True,
                               max_delay_ms: float = MAX_DELAY_MS,
                               ground_recv_rate: float = GROUND_RECV_RATE) -> NetworkScore:
    """The score of a receiver packet log with named fields ``arrival_ns``,
    ``send_ns``, ``ssrc``, ``rtp_seq``, ``size`` and ``header_length`` (the
    RTC receiver's ``receiver_packets`` records), in arrival order.

    ``payloadSize`` is ``size - header_length`` (RTP payload, as AlphaRTC
    logs it). Packets without a send time (``send_ns < 0``) are left out.
    With ``integer_ms`` the times are floored to whole milliseconds, as
    AlphaRTC logs them (int64 ms), so the score matches what their tool
    would compute from an AlphaRTC log of the same packets.
    """
    packets = receiver_packets[receiver_packets["send_ns"] >= 0]
    send = packets["send_ns"].astype(np.int64)
    arrival = packets["arrival_ns"].astype(np.int64)
    if integer_ms:
        send_ms: npt.NDArray[Any] = send // 1_000_000
        arrival_ms: npt.NDArray[Any] = arrival // 1_000_000
    else:
        send_ms, arrival_ms = send / 1e6, arrival / 1e6
    payload = packets["size"].astype(np.int64) - packets["header_length"].astype(np.int64)
    return network_score(packets["ssrc"].astype(np.int64), packets["rtp_seq"].astype(np.int64),
                         send_ms, arrival_ms, payload, max_delay_ms=max_delay_ms,
                         ground_recv_rate=ground_recv_rate)
