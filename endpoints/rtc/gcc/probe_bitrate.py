"""A probe cluster's result from transport feedback (libwebrtc
goog_cc/probe_bitrate_estimator.cc).

Per cluster: the send rate is the bytes sent (less the last packet's, which
the send interval does not cover) over last send - first send; the receive
rate is the bytes received (less the first packet's) over last arrival -
first arrival. A result needs feedback on 80 % of the cluster's packets and
bytes, both intervals in (0, 1 s], and receive/send ≤ 2. The estimate is
min(send, receive); if the receiver saw less than 90 % of the send rate the
link was saturated and the estimate is 95 % of the receive rate. Clusters
with no arrival for 1 s are forgotten. Times in µs.
"""

from __future__ import annotations

from dataclasses import dataclass

from endpoints.rtc.probing import ProbeCluster
from endpoints.rtc.twcc import PacketResult

MIN_RECEIVED_PROBES_RATIO = 0.80
MIN_RECEIVED_BYTES_RATIO = 0.80
MAX_VALID_RATIO = 2.0
MIN_RATIO_FOR_UNSATURATED_LINK = 0.9
TARGET_UTILIZATION_FRACTION = 0.95
MAX_CLUSTER_HISTORY_US = 1_000_000
MAX_PROBE_INTERVAL_US = 1_000_000


@dataclass
class _Aggregate:
    first_send_us: int
    last_send_us: int
    size_last_send: int
    first_arrival_us: int
    last_arrival_us: int
    size_first_arrival: int
    size_total: int = 0
    num_probes: int = 0


class ProbeBitrateEstimator:
    def __init__(self) -> None:
        self._clusters: dict[int, _Aggregate] = {}
        self._last_estimate_bps: float | None = None
        self.results: list[tuple[int, float]] = []  # (cluster id, bps) for logs and tests

    def on_probe_result(self, result: PacketResult, cluster: ProbeCluster) -> float | None:
        """Feed one acknowledged probe packet; the cluster's estimate once it has one."""
        arrival = result.arrival_time_us
        if arrival is None:
            return None
        self._erase_old(arrival)
        agg = self._clusters.get(cluster.id)
        if agg is None:
            agg = self._clusters[cluster.id] = _Aggregate(
                result.send_time_us, result.send_time_us, result.size, arrival, arrival,
                result.size)
        else:
            agg.first_send_us = min(agg.first_send_us, result.send_time_us)
            if result.send_time_us > agg.last_send_us:
                agg.last_send_us, agg.size_last_send = result.send_time_us, result.size
            if arrival < agg.first_arrival_us:
                agg.first_arrival_us, agg.size_first_arrival = arrival, result.size
            agg.last_arrival_us = max(agg.last_arrival_us, arrival)
        agg.size_total += result.size
        agg.num_probes += 1
        if (agg.num_probes < cluster.min_probes * MIN_RECEIVED_PROBES_RATIO
                or agg.size_total < cluster.min_bytes * MIN_RECEIVED_BYTES_RATIO):
            return None
        send_interval = agg.last_send_us - agg.first_send_us
        receive_interval = agg.last_arrival_us - agg.first_arrival_us
        if not (0 < send_interval <= MAX_PROBE_INTERVAL_US
                and 0 < receive_interval <= MAX_PROBE_INTERVAL_US):
            return None
        send_bps = (agg.size_total - agg.size_last_send) * 8e6 / send_interval
        receive_bps = (agg.size_total - agg.size_first_arrival) * 8e6 / receive_interval
        if receive_bps > MAX_VALID_RATIO * send_bps:
            return None
        estimate = min(send_bps, receive_bps)
        if receive_bps < MIN_RATIO_FOR_UNSATURATED_LINK * send_bps:
            estimate = TARGET_UTILIZATION_FRACTION * receive_bps  # found the capacity
        self._last_estimate_bps = estimate
        self.results.append((cluster.id, estimate))
        return estimate

    def fetch_and_reset(self) -> float | None:
        estimate, self._last_estimate_bps = self._last_estimate_bps, None
        return estimate

    def _erase_old(self, now_us: int) -> None:
        for cluster_id in [cid for cid, agg in self._clusters.items()
                           if agg.last_arrival_us + MAX_CLUSTER_HISTORY_US < now_us]:
            del self._clusters[cluster_id]
