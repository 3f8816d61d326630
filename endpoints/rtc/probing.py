"""Probe clusters and the pacer-side prober (libwebrtc modules/pacing/bitrate_prober.cc).

A probe cluster is a short burst sent at a chosen rate, well above the
current target, so that the rate the receiver saw it arrive at (from
transport-wide feedback) measures how much the path can carry
(draft-ietf-rmcat-gcc-02 leaves ramp-up open; libwebrtc's ProbeController
asks for clusters, the pacer sends them). A cluster is done once it has sent
``min_probes`` packets and ``min_bytes`` (rate × 15 ms, libwebrtc's
``min_probe_duration``). Packets are spaced so the cluster's bytes leave at
its rate: the next probe is due at ``start + bytes_sent × 8 / rate``, and
each is at least :meth:`BitrateProber.recommended_min_probe_size` (two
``min_probe_delta`` of 2 ms at the probe rate) so a 5 ms pacer tick cannot
flatten the burst. Clusters that have not started within 5 s are dropped
(libwebrtc's kProbeClusterTimeout) and at most 5 wait at once.

The prober only schedules; the sender fills each probe with queued media
first and padding for the rest, as libwebrtc's PacingController does.
Clock injected (µs).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

MIN_PROBE_DURATION_US = 15_000  # ProbeControllerConfig min_probe_duration
MIN_PROBE_PACKETS = 5  # ProbeControllerConfig min_probe_packets_sent
MIN_PROBE_DELTA_US = 2_000  # BitrateProberConfig min_probe_delta
PROBE_CLUSTER_TIMEOUT_US = 5_000_000  # kProbeClusterTimeout
MAX_PENDING_CLUSTERS = 5  # kMaxPendingProbeClusters


@dataclass(frozen=True)
class ProbeCluster:
    """What the controller asks for: send ``min_bytes`` in ``min_probes`` at ``rate_bps``."""

    id: int
    rate_bps: float
    created_us: int
    min_probes: int = MIN_PROBE_PACKETS
    duration_us: int = MIN_PROBE_DURATION_US

    @property
    def min_bytes(self) -> int:
        return int(self.rate_bps * self.duration_us / 8e6)


@dataclass
class _Active:
    cluster: ProbeCluster
    started_us: int | None = None
    sent_bytes: int = 0
    sent_probes: int = 0


class BitrateProber:
    def __init__(self) -> None:
        self._clusters: deque[_Active] = deque()
        self._next_probe_us: int | None = None
        self.clusters_sent = 0

    def add(self, cluster: ProbeCluster, now_us: int) -> None:
        self._clusters.append(_Active(cluster))
        while self._clusters and (
                len(self._clusters) > MAX_PENDING_CLUSTERS
                or now_us - self._clusters[0].cluster.created_us > PROBE_CLUSTER_TIMEOUT_US):
            self._clusters.popleft()
            self._next_probe_us = None

    @property
    def active(self) -> bool:
        return bool(self._clusters)

    @property
    def current(self) -> ProbeCluster | None:
        return self._clusters[0].cluster if self._clusters else None

    def next_probe_time_us(self, now_us: int) -> int | None:
        """When the next probe is due (``None``: nothing to probe)."""
        if not self._clusters:
            return None
        return now_us if self._next_probe_us is None else self._next_probe_us

    def recommended_min_probe_size(self) -> int:
        """Bytes worth two ``min_probe_delta`` at the probe rate (libwebrtc's rule)."""
        if not self._clusters:
            return 0
        return int(2 * self._clusters[0].cluster.rate_bps * MIN_PROBE_DELTA_US / 8e6)

    def on_probe_sent(self, now_us: int, size: int) -> None:
        """Account one probe packet of ``size`` bytes sent for the current cluster."""
        if not self._clusters:
            return
        active = self._clusters[0]
        if active.started_us is None:
            active.started_us = now_us
        active.sent_bytes += size
        active.sent_probes += 1
        cluster = active.cluster
        self._next_probe_us = active.started_us + int(
            active.sent_bytes * 8e6 / cluster.rate_bps)
        if active.sent_probes >= cluster.min_probes and active.sent_bytes >= cluster.min_bytes:
            self._clusters.popleft()
            self.clusters_sent += 1
            if not self._clusters:
                self._next_probe_us = None
