"""Per-direction fidelity from what each backend logs.

* Kernel backend: the replayer's log (``shaping.replay.read_replay_log``):
  change timing, and capacity from the qdisc counters it sampled every 10 ms.
  Delay error comes from elsewhere (a probe), if at all.
* User backend: the link process's per-packet and change logs
  (``shaping.userlink.read_packet_log`` / ``read_change_log``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from shaping.fidelity.capacity import (
    DEFAULT_BIN_S,
    asked_from_changes,
    asked_from_trace,
    bin_edges,
    delay_line_bytes,
    kernel_bins,
    packet_bins,
)
from shaping.fidelity.packets import (
    delay_errors_ns,
    delay_from_changes,
    loss_asked_seen,
    loss_from_changes,
    served_ns,
)
from shaping.fidelity.report import DirectionFidelity
from shaping.fidelity.series import percentiles_ms
from shaping.replay.log import ReplayLog
from shaping.traces.model import Trace

#: userlink's per-packet overheads (shaping/userlink/rate.py).
ETHERNET_OVERHEAD_BYTES = 14
MAHIMAHI_OVERHEAD_BYTES = 4


def timing_errors_ns(changes: npt.NDArray[Any], *, skip_initial: bool = True
                     ) -> npt.NDArray[np.int64]:
    """``applied_ns - scheduled_ns`` per change.

    ``skip_initial`` leaves out the user-space link's record of its starting
    shape (applied at start by construction, not by the replay); the replay
    log has no such record.
    """
    errors: npt.NDArray[np.int64] = (changes["applied_ns"] - changes["scheduled_ns"]).astype(
        np.int64)
    if skip_initial and len(changes) and changes["scheduled_ns"][0] == changes["applied_ns"][0]:
        errors = errors[1:]
    return errors


def kernel_direction(
    link: str,
    direction: str,
    log: ReplayLog,
    *,
    end_ns: int | None = None,
    bin_s: float = DEFAULT_BIN_S,
    sample_interval_ns: int = 10_000_000,
    delay_errors: npt.ArrayLike | None = None,
    trace: Trace | None = None,
) -> DirectionFidelity:
    """Fidelity of a direction shaped by tc and driven by the replayer.

    ``end_ns`` bounds the bins (default: the last counter sample); bins start
    at the first sample.  With ``trace`` the asked capacity is the trace's
    own (what Mahimahi would deliver), not the replayed steps, so what the
    binning and outage handling change is judged too.  Loss is
    judged only where the tree had netem (its drops are counted apart).
    """
    changes, samples = log.changes, log.samples
    entry = DirectionFidelity(link, direction, source="kernel replay log")
    entry.changes = len(changes)
    entry.skipped_changes = int((changes["called_ns"] < 0).sum()) if len(changes) else 0
    entry.timing_err_ms = percentiles_ms(changes["applied_ns"] - changes["scheduled_ns"])
    if len(samples) >= 2:
        # Bins start at the first sample (half an interval after the replay's
        # start): the byte counter is known only between samples.
        last = int(samples["t_ns"][-1]) if end_ns is None else end_ns
        edges = bin_edges(max(log.start_ns, int(samples["t_ns"][0])), last, bin_s)
        asked = (asked_from_trace(trace, log.start_ns, last) if trace is not None
                 else asked_from_changes(changes))
        bins = kernel_bins(samples, asked, edges, sample_interval_ns,
                           in_flight=delay_line_bytes(changes) if len(changes) else None)
        entry.capacity_bins_total = len(edges) - 1
        entry.capacity_bins = int(bins.judged.sum())
        entry.capacity_by_bin = bins.counted_bins(log.start_ns)
        entry.capacity_mape = bins.mape()
        errors = bins.errors()
        entry.capacity_err_max = float(errors.max()) if errors.size else None
        asked_loss = float(np.mean(changes["loss"])) if len(changes) else 0.0
        # netem holds the queue too (its limit is the asked queue plus the packets in
        # flight), and its drop counter counts the queue's overflow with its random
        # loss: with no loss asked, every netem drop is the queue's, not a loss.
        if asked_loss == 0 and int(samples["loss_drops"][-1]) > 0:
            entry.notes.append("no loss asked: netem's drops are its queue's overflow "
                               "(tail drops), not judged as loss")
        if asked_loss > 0:
            lost = int(samples["loss_drops"][-1] - samples["loss_drops"][0])
            sent = int(samples["packets"][-1] - samples["packets"][0])
            dropped = int(samples["drops"][-1] - samples["drops"][0])
            arrived = sent + dropped
            loss_series = loss_from_changes(changes)
            entry.loss_asked = float(np.nan_to_num(loss_series.at(samples["t_ns"]), nan=0.0)
                                     .mean())
            entry.loss_seen = lost / arrived if arrived else None
            entry.loss_packets = arrived
            entry.notes.append("kernel loss asked is time-weighted (no per-packet log); "
                               "seen includes the queue's overflow drops (netem counts both)")
    if delay_errors is not None:
        entry.delay_err_ms = percentiles_ms(np.abs(np.asarray(delay_errors)),
                                            ("p50", "p99", "p999", "max"))
    return entry


def userlink_direction(
    link: str,
    direction: str,
    packets: npt.NDArray[Any],
    changes: npt.NDArray[Any],
    *,
    start_ns: int,
    end_ns: int | None = None,
    trace: Trace | None = None,
    loss_asked: float | None = None,
    bin_s: float = DEFAULT_BIN_S,
) -> DirectionFidelity:
    """Fidelity of one direction of a user-space link from its own logs.

    ``trace`` is needed when the direction replays Mahimahi opportunities
    (they are not in the change log); otherwise the asked capacity is the
    change log's.  ``loss_asked`` overrides the change log's IID loss (give
    the stationary loss of a Gilbert-Elliott model).
    """
    entry = DirectionFidelity(link, direction, source="user-space link log")
    # Only the run is judged. The link follows its schedule from when it opened
    # until the run's zero restarts it; changes due in that run-up fall while the
    # process is still starting (a trace that opens with an outage ramp logs ten
    # of them in its first 100 ms, applied together some 100 ms late), and no flow
    # has sent yet. Judging them failed runs whose replay of the trace was exact.
    timing = timing_errors_ns(changes[changes["scheduled_ns"] >= start_ns])
    entry.changes = len(timing)
    entry.timing_err_ms = percentiles_ms(timing)
    entry.delay_err_ms = percentiles_ms(delay_errors_ns(packets), ("p50", "p99", "p999", "max"))
    if len(packets):
        stop = end_ns if end_ns is not None else int(
            max(packets["arrival_ns"].max(), packets["departure_ns"].max()))
        edges = bin_edges(start_ns, stop, bin_s)
        if trace is not None and trace.opportunities_ms is not None:
            asked = asked_from_trace(trace, start_ns, stop)
            overhead = MAHIMAHI_OVERHEAD_BYTES
        else:
            asked = asked_from_changes(changes)
            overhead = ETHERNET_OVERHEAD_BYTES
        served = served_ns(packets, delay_from_changes(changes))
        bins = packet_bins(packets, asked, edges, served_ns=served, overhead_bytes=overhead)
        entry.capacity_bins_total = len(edges) - 1
        entry.capacity_bins = int(bins.judged.sum())
        entry.capacity_by_bin = bins.counted_bins(start_ns)
        entry.capacity_mape = bins.mape()
        errors = bins.errors()
        entry.capacity_err_max = float(errors.max()) if errors.size else None
    asked_value = loss_from_changes(changes) if loss_asked is None else loss_asked
    entry.loss_asked, entry.loss_seen, entry.loss_packets = loss_asked_seen(packets, asked_value)
    return entry
