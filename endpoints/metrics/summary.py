"""The per-flow ``metrics`` and ``scores`` dicts of results.json.

Every flow has the results-contract keys ``recv_rate_bps``,
``delay_p50_ms``, ``delay_p95_ms``, ``delay_p99_ms`` and ``loss``, plus
kind-specific extras. Values are plain floats/ints or None (never NaN, so
the JSON stays valid). Inputs are the arrays the documented log readers
return; field names are listed per function.

TCP has no per-packet one-way delay without a packet capture, so a TCP
flow's ``delay_p*_ms`` are None and its delay is in ``rtt_p*_ms`` (the
kernel's smoothed RTT sampled every 10 ms); its ``loss`` is the fraction of
sent bytes that were retransmissions (TCP repairs losses; this is what the
network took from it, spurious retransmissions included).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from endpoints.metrics import delay, fairness, frames, loss, objectives, opennetlab, series

SERIES_BIN_NS = 100_000_000
#: Packets sent this close to the end may still be in flight when the
#: receiver stops; they are not counted as expected (nor as lost).
DEFAULT_TAIL_GRACE_NS = 500_000_000
NO_FRAME = 0xFFFFFFFF
ESTABLISHED = 1  # TCP_ESTABLISHED in include/net/tcp_states.h
UNLIMITED_RATE = 0xFFFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class FlowSummary:
    metrics: dict[str, Any]
    scores: dict[str, Any] = field(default_factory=dict)
    #: Time series for CSV/plots: name -> array (all of one length per prefix).
    series: dict[str, npt.NDArray[Any]] = field(default_factory=dict)


def _clean(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def link_fairness(recv_rates_bps: Sequence[float]) -> float | None:
    """Jain's index of the mean rates of flows sharing a link (None if undefined)."""
    if not recv_rates_bps:
        return None
    result: float | None = _clean(fairness.jain_index(recv_rates_bps))
    return result


def estimate_vs_capacity(estimate_times_ns: npt.ArrayLike, estimate_bps: npt.ArrayLike,
                         capacity_times_ns: npt.ArrayLike, capacity_bps: npt.ArrayLike,
                         start_ns: int, end_ns: int,
                         step_ns: int = SERIES_BIN_NS) -> dict[str, float | None]:
    """How an estimate tracked the link capacity, both held as step signals
    and compared every ``step_ns`` where both are known and capacity > 0:
    mean and median of estimate/capacity, mean absolute percentage error,
    and the share of time the estimate was above capacity."""
    grid = np.arange(start_ns, end_ns, step_ns, dtype=np.int64)
    est = series.hold_values(estimate_times_ns, estimate_bps, grid)
    cap = series.hold_values(capacity_times_ns, capacity_bps, grid)
    keep = np.isfinite(est) & np.isfinite(cap) & (cap > 0)
    if not np.any(keep):
        return {"mean_ratio": None, "median_ratio": None, "mape": None, "over_fraction": None}
    ratio = est[keep] / cap[keep]
    result: dict[str, float | None] = _clean({
        "mean_ratio": float(ratio.mean()), "median_ratio": float(np.median(ratio)),
        "mape": float(np.mean(np.abs(ratio - 1.0))),
        "over_fraction": float(np.mean(ratio > 1.0))})
    return result


def _video_ssrc(sender_packets: npt.NDArray[Any]) -> int | None:
    """The framed SSRC that sent the most bytes: video, when the call also
    has audio (audio has more, smaller frames, so frame counts would not do)."""
    framed = sender_packets[sender_packets["frame_id"] != NO_FRAME]
    if framed.size == 0:
        return None
    ssrcs, index = np.unique(framed["ssrc"], return_inverse=True)
    volume = np.bincount(index, weights=framed["size"].astype(np.float64))
    return int(ssrcs[np.argmax(volume)])


def rtc_flow_metrics(receiver_packets: npt.NDArray[Any],
                     sender_packets: npt.NDArray[Any] | None = None, *,
                     start_ns: int | None = None, end_ns: int | None = None,
                     video_ssrc: int | None = None,
                     estimates: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
                     capacity: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
                     ground_recv_rate_bps: float | None = None,
                     max_delay_ms: float = opennetlab.MAX_DELAY_MS,
                     tail_grace_ns: int = DEFAULT_TAIL_GRACE_NS) -> FlowSummary:
    """Metrics and scores of one RTC flow.

    ``receiver_packets`` (arrival order): arrival_ns, send_ns (-1 if
    unknown), transport_seq, ssrc, frame_id, rtp_seq, size, header_length.
    ``sender_packets``: send_ns, transport_seq, ssrc, frame_id, size.
    ``estimates``/``capacity``: (times_ns, bps) step signals, e.g. the
    sender's target rate and the link trace. With ``capacity`` the flow also
    gets ``capacity_bps`` (what the path offered, averaged over the flow's
    interval), ``utilization`` (IP bytes received over that) and the
    capacity-normalised score ``scores.capacity``
    (:mod:`endpoints.metrics.objectives`). ``ground_recv_rate_bps`` is
    OpenNetLab's receive-rate reference (their default, 4 Mbit/s, if None).
    ``video_ssrc`` picks the stream for frame metrics (default: the framed
    SSRC with the most bytes in the sender log).
    """
    recv = receiver_packets
    if start_ns is None:
        start_ns = int(recv["arrival_ns"].min()) if recv.size else 0
    if end_ns is None:
        end_ns = int(recv["arrival_ns"].max()) + 1 if recv.size else start_ns + 1
    metrics: dict[str, Any] = {}
    if end_ns > start_ns:
        metrics["recv_rate_bps"] = series.mean_rate_bps(recv["arrival_ns"], recv["size"],
                                                        start_ns, end_ns)
    else:
        metrics["recv_rate_bps"] = None
    owd = delay.one_way_delay_ms(recv["send_ns"], recv["arrival_ns"])
    for key, value in delay.percentiles(owd).items():
        metrics[f"delay_{key}_ms"] = value

    received_seq = recv["transport_seq"].astype(np.int64)
    received_seq = received_seq[received_seq != NO_FRAME]
    if sender_packets is not None:
        expected = sender_packets[sender_packets["send_ns"] <= end_ns - tail_grace_ns]
        stats = loss.loss_from_sequences(received_seq, expected["transport_seq"])
        if end_ns > start_ns:
            metrics["send_rate_bps"] = series.mean_rate_bps(
                sender_packets["send_ns"], sender_packets["size"], start_ns, end_ns)
    else:
        stats = loss.loss_from_sequences(received_seq)
    metrics.update(loss=stats.loss, packets_expected=stats.expected,
                   packets_received=stats.received, packets_lost=stats.lost,
                   duplicates=stats.duplicates, reordered=stats.reordered)

    if sender_packets is not None:
        ssrc = video_ssrc if video_ssrc is not None else _video_ssrc(sender_packets)
        if ssrc is not None:
            sent_video = sender_packets[(sender_packets["ssrc"] == ssrc)
                                        & (sender_packets["frame_id"] != NO_FRAME)]
            recv_video = recv[(recv["ssrc"] == ssrc) & (recv["frame_id"] != NO_FRAME)]
            timing = frames.frame_timing(sent_video["frame_id"], sent_video["send_ns"],
                                         sent_video["transport_seq"], recv_video["frame_id"],
                                         recv_video["arrival_ns"], recv_video["transport_seq"])
            frame_delay = delay.percentiles(timing.delay_ms, (50.0, 95.0))
            freeze = frames.freezes(timing.render_times_ns())
            metrics.update(frame_delay_p50_ms=frame_delay["p50"],
                           frame_delay_p95_ms=frame_delay["p95"],
                           frames_sent=int(timing.frame_id.size),
                           frames_complete=int(np.count_nonzero(timing.complete)),
                           freezes=freeze.count, freeze_time_s=freeze.total_s)

    if estimates is not None and capacity is not None:
        metrics["estimate_vs_capacity"] = estimate_vs_capacity(
            estimates[0], estimates[1], capacity[0], capacity[1], start_ns, end_ns)
    offered: float | None = None
    received_ip_bps: float | None = None
    if capacity is not None and end_ns > start_ns:
        offered = series.mean_held(capacity[0], capacity[1], start_ns, end_ns)
        received_ip_bps = series.mean_rate_bps(
            recv["arrival_ns"], recv["size"].astype(np.float64) + objectives.IPV4_UDP_HEADER_BYTES,
            start_ns, end_ns)
        metrics["capacity_bps"] = offered
        metrics["utilization"] = (objectives.utilization(received_ip_bps, offered)
                                  if math.isfinite(offered) else None)

    scores: dict[str, Any] = {}
    if recv.size and np.any(recv["send_ns"] >= 0):
        ground = (opennetlab.GROUND_RECV_RATE if ground_recv_rate_bps is None
                  else opennetlab.bps_to_bytes_per_ms(ground_recv_rate_bps))
        score = opennetlab.network_score_from_packets(recv, max_delay_ms=max_delay_ms,
                                                      ground_recv_rate=ground)
        scores = {"network": score.network, "network_delay_score": score.delay_score,
                  "network_recv_rate_score": score.recv_rate_score,
                  "network_loss_rate": score.loss_rate,
                  "network_ground_recv_rate_bps": ground * 8000.0}
        if offered is not None and received_ip_bps is not None and math.isfinite(offered):
            scores["capacity"] = objectives.capacity_score(
                score.delay_score, score.loss_rate, received_ip_bps, offered)
            scores["capacity_rate_score"] = objectives.capacity_rate_term(received_ip_bps,
                                                                          offered)
    else:
        scores = {"network": None}

    rates = series.rate_series(recv["arrival_ns"], recv["size"], bin_ns=SERIES_BIN_NS,
                               start_ns=start_ns, end_ns=end_ns)
    return FlowSummary(_clean(metrics), _clean(scores),
                       {"time_s": (rates.bin_start_ns - start_ns) / 1e9,
                        "recv_rate_bps": rates.rate_bps})


def tcp_flow_metrics(tcp_info: npt.NDArray[Any] | None, recv_bins: npt.NDArray[Any], *,
                     start_ns: int | None = None, end_ns: int | None = None) -> FlowSummary:
    """Metrics of one TCP flow from the sender's TCP_INFO samples
    (``endpoints.tcp.logs.TCP_INFO_DTYPE``; may be None when only the
    receiver ran) and the receiver's 10 ms bins (``RECV_BIN_DTYPE``).

    The rate window defaults to the sender's first..last sample, else the
    first..last non-empty receiver bin.
    """
    have_info = tcp_info is not None and tcp_info.size > 0
    if start_ns is None or end_ns is None:
        if have_info:
            assert tcp_info is not None
            default_start, default_end = int(tcp_info["t_ns"][0]), int(tcp_info["t_ns"][-1])
        else:
            busy = recv_bins[recv_bins["bytes"] > 0]
            default_start = int(busy["bin_start_ns"][0]) if busy.size else 0
            default_end = int(busy["bin_start_ns"][-1]) + 10_000_000 if busy.size else 1
        start_ns = default_start if start_ns is None else start_ns
        end_ns = default_end if end_ns is None else end_ns
    metrics: dict[str, Any] = {
        "recv_rate_bps": (series.mean_rate_bps(recv_bins["bin_start_ns"], recv_bins["bytes"],
                                               start_ns, end_ns) if end_ns > start_ns else None),
        "delay_p50_ms": None, "delay_p95_ms": None, "delay_p99_ms": None, "loss": None,
        "recv_bytes": int(recv_bins["bytes"].sum()),
    }
    out_series: dict[str, npt.NDArray[Any]] = {}
    rates = series.rebin(recv_bins["bin_start_ns"], recv_bins["bytes"], bin_ns=SERIES_BIN_NS,
                         start_ns=start_ns, end_ns=end_ns)
    out_series["time_s"] = (rates.bin_start_ns - start_ns) / 1e9
    out_series["recv_rate_bps"] = rates.rate_bps
    if have_info:
        assert tcp_info is not None
        last = tcp_info[-1]
        live = tcp_info[(tcp_info["state"] == ESTABLISHED) & (tcp_info["rtt_us"] > 0)]
        for key, value in delay.percentiles(live["rtt_us"] / 1000.0).items():
            metrics[f"rtt_{key}_ms"] = value
        sent = int(last["bytes_sent"])
        paced = live["pacing_rate"][live["pacing_rate"] != UNLIMITED_RATE]
        metrics.update(
            loss=int(last["bytes_retrans"]) / sent if sent else 0.0,
            min_rtt_ms=float(live["min_rtt_us"].min()) / 1000.0 if live.size else None,
            retransmits=int(last["total_retrans"]), retrans_bytes=int(last["bytes_retrans"]),
            sent_bytes=sent, acked_bytes=int(last["bytes_acked"]),
            cwnd_p50=float(np.median(live["snd_cwnd"])) if live.size else None,
            cwnd_mean=float(np.mean(live["snd_cwnd"])) if live.size else None,
            cwnd_max=int(live["snd_cwnd"].max()) if live.size else None,
            delivery_rate_p50_bps=(float(np.median(live["delivery_rate"])) * 8.0
                                   if live.size else None),
            pacing_rate_p50_bps=float(np.median(paced)) * 8.0 if paced.size else None,
            tcp_info_samples=int(tcp_info.size))
        out_series["info_time_s"] = (tcp_info["t_ns"] - start_ns) / 1e9
        out_series["info_srtt_ms"] = tcp_info["rtt_us"] / 1000.0
        out_series["info_cwnd"] = tcp_info["snd_cwnd"].astype(np.float64)
        out_series["info_delivery_rate_bps"] = tcp_info["delivery_rate"] * 8.0
    return FlowSummary(_clean(metrics), {}, out_series)
