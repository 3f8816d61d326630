"""From a run's capture files to ``traffic[]`` rows and a command flow's metrics.

Rates count transport payload (UDP/TCP payload, IP payload otherwise), as
netlab's own flows and iperf3 do; ``bytes`` and ``wire_rate_bps`` count
whole IP packets.  A row's rate is over its own active time, first to last
delivery (unbiased: the first packet's bytes are not counted, as they
arrive at the start of the interval).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from netlab.capture.match import FlowResult, match_direction
from netlab.capture.pcap import LINKTYPE_RAW, ip_offset, read_packets
from netlab.capture.recorder import CAPTURE_DIR, MANIFEST
from netlab.errors import NetlabError

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}
_RING_NUMBER = re.compile(r"_(\d{5})_\d{14}\.pcapng$")


@dataclass
class TrafficRow:
    """One 5-tuple in one link direction (results.json ``traffic[]``)."""

    link: str
    direction: str
    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    packets: int  # delivered: seen at the entry and at the exit
    bytes: int  # IP bytes of those
    recv_rate_bps: float | None  # transport payload rate at the exit
    loss: float | None  # lost / (delivered + lost)
    delay_p50_ms: float | None  # one-way, entry to exit, per packet
    delay_p95_ms: float | None
    delay_p99_ms: float | None
    wire_rate_bps: float | None = None  # the same with whole IP packets
    payload_bytes: int = 0
    lost: int = 0
    in_flight: int = 0  # entered too close to the end to judge; in neither count
    unmatched_exit: int = 0  # left the link with no recorded entry
    first_s: float | None = None  # first and last delivery, Unix time
    last_s: float | None = None
    samples: FlowResult | None = field(default=None, repr=False, compare=False)  # per packet

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        return data


def _percentiles_ms(delays_ns: Sequence[int]) -> tuple[float | None, float | None, float | None]:
    if not delays_ns:
        return None, None, None
    p50, p95, p99 = np.percentile(np.asarray(delays_ns, dtype=np.float64), [50, 95, 99]) / 1e6
    return float(p50), float(p95), float(p99)


def _rate(total: int, first: int, first_ns: int, last_ns: int) -> float | None:
    if last_ns <= first_ns:
        return None
    return (total - first) * 8e9 / (last_ns - first_ns)


def row_from(link: str, direction: str, result: FlowResult) -> TrafficRow:
    key = result.flow
    p50, p95, p99 = _percentiles_ms(result.delays_ns)
    judged = result.delivered + result.lost
    delivered = result.delivered > 0
    return TrafficRow(
        link=link, direction=direction, proto=PROTOCOLS.get(key[0], str(key[0])),
        src=str(ipaddress.IPv4Address(key[1:5])), dst=str(ipaddress.IPv4Address(key[5:9])),
        sport=int.from_bytes(key[9:11], "big"), dport=int.from_bytes(key[11:13], "big"),
        packets=result.delivered, bytes=result.delivered_bytes,
        recv_rate_bps=_rate(result.payload_bytes, result.first_payload, result.first_ns,
                            result.last_ns),
        loss=result.lost / judged if judged else None,
        delay_p50_ms=p50, delay_p95_ms=p95, delay_p99_ms=p99,
        wire_rate_bps=_rate(result.delivered_bytes, result.first_bytes, result.first_ns,
                            result.last_ns),
        payload_bytes=result.payload_bytes, lost=result.lost, in_flight=result.in_flight,
        unmatched_exit=result.unmatched_exit,
        first_s=result.first_ns / 1e9 if delivered else None,
        last_s=result.last_ns / 1e9 if delivered else None,
        samples=result,
    )


def capture_files(directory: Path, stem: str) -> tuple[list[Path], bool]:
    """A point's files in ring order, and whether the ring dropped older ones."""
    numbered = []
    for path in directory.glob(f"{stem}_*.pcapng"):
        found = _RING_NUMBER.search(path.name)
        if found:
            numbered.append((int(found.group(1)), path))
    numbered.sort()
    if not numbered:
        single = directory / f"{stem}.pcapng"
        return ([single] if single.exists() else []), False
    return [p for _, p in numbered], numbered[0][0] > 1


def _ip_packets(files: list[Path], to: frozenset[bytes] | None = None,
                ) -> Iterator[tuple[int, bytes]]:
    """IPv4 packets of a point's files (those to ``to`` only, when given)."""
    for path in files:
        for ts, linktype, data in read_packets(path):
            if linktype == LINKTYPE_RAW and data[0] >> 4 == 4:  # TUN: the common case
                ip = data
            else:
                offset = ip_offset(linktype, data)
                if offset < 0:
                    continue
                ip = data[offset:]
            if to is None or ip[16:20] in to:
                yield ts, ip


def _first_ts(files: list[Path]) -> int | None:
    return next((ts for ts, _ in _ip_packets(files[:1])), None)


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CAPTURE_DIR / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise NetlabError(f"capture manifest is not valid JSON: {exc}", where=str(path),
                          fix="re-run the scenario; the capture was cut short") from exc
    return data


def analyse(run_dir: Path) -> list[TrafficRow]:
    """``traffic[]`` of a run: every 5-tuple of every captured link direction.

    A run without a capture gives no rows.
    """
    manifest = read_manifest(run_dir)
    if manifest is None:
        return []
    directory = run_dir / CAPTURE_DIR
    stems: dict[tuple[str, str], dict[str, str]] = {}
    for point in manifest["points"]:
        for direction, role in point["serves"]:
            stems.setdefault((point["link"], direction), {})[role] = point["stem"]
    stopped = manifest.get("stopped_ns")
    rows: list[TrafficRow] = []
    for (link, direction), roles in stems.items():
        if "entry" not in roles or "exit" not in roles:
            continue
        to = frozenset(ipaddress.IPv4Address(a).packed
                       for a in manifest["destinations"][link][direction])
        entry_files, _ = capture_files(directory, roles["entry"])
        exit_files, exit_wrapped = capture_files(directory, roles["exit"])
        flows = match_direction(
            _ip_packets(entry_files, to), _ip_packets(exit_files, to),
            end_ns=int(stopped) if stopped else None,
            exit_start_ns=_first_ts(exit_files) if exit_wrapped else None)
        rows.extend(row_from(link, direction, result) for result in flows.values())
    rows.sort(key=lambda r: (r.link, r.direction, -r.bytes))
    return rows


def sender_rows(rows: list[TrafficRow], sender: str | Collection[str]) -> list[TrafficRow]:
    """The rows of the traffic a host sent (``sender``: its address or
    addresses), on one link direction: where its packets cross several
    captured links, the one that delivered most of its bytes."""
    addresses = {sender} if isinstance(sender, str) else set(sender)
    by_link: dict[tuple[str, str], list[TrafficRow]] = {}
    for row in rows:
        if row.src in addresses:
            by_link.setdefault((row.link, row.direction), []).append(row)
    if not by_link:
        return []
    return max(by_link.values(), key=lambda group: sum(r.bytes for r in group))


#: A 5-tuple that carries less than this share of a host's payload (a control
#: connection, an ICMP error) adds its bytes to the host's rate, not its time.
CARRIER_SHARE = 0.01


def _active_ns(spans: list[tuple[int, int]]) -> int:
    """The length of the union of ``[first, last]`` spans."""
    total = 0
    start, end = -1, -1
    for first, last in sorted(spans):
        if first > end:
            total += end - start
            start, end = first, last
        else:
            end = max(end, last)
    return total + end - start


def aggregate_rate(rows: list[TrafficRow]) -> float | None:
    """The payload rate of several 5-tuples together, over the time the ones
    that carry the traffic were active (the union of their spans).

    Neither a sum of the rows' own rates (two short flows one after the other
    would count double, and a 2-packet ICMP error 9 ms apart reads as
    0.5 Mbit/s) nor the union of every row's span (a control connection open
    before and after the data would stretch the time) gives the rate a
    program's own report gives.
    """
    total = sum(r.payload_bytes for r in rows)
    carriers = [r.samples for r in rows
                if r.samples is not None and r.samples.last_ns > r.samples.first_ns
                and r.payload_bytes >= CARRIER_SHARE * total]
    if total <= 0 or not carriers:
        return None
    first = min(carriers, key=lambda s: s.first_ns)
    active = _active_ns([(s.first_ns, s.last_ns) for s in carriers])
    return (total - first.first_payload) * 8e9 / active


def flow_metrics(rows: list[TrafficRow], sender: str | Collection[str]) -> dict[str, Any]:
    """The results-contract ``metrics`` of a command flow, from the traffic
    its host sent (see ``sender_rows``): the rate by ``aggregate_rate``, loss
    and delay percentiles over all its packets.
    """
    chosen = sender_rows(rows, sender)
    metrics: dict[str, Any] = {"recv_rate_bps": None, "delay_p50_ms": None,
                               "delay_p95_ms": None, "delay_p99_ms": None, "loss": None}
    if not chosen:
        return metrics
    delays = [d for r in chosen if r.samples is not None for d in r.samples.delays_ns]
    delivered = sum(r.packets for r in chosen)
    lost = sum(r.lost for r in chosen)
    p50, p95, p99 = _percentiles_ms(delays)
    metrics.update(
        recv_rate_bps=aggregate_rate(chosen), delay_p50_ms=p50, delay_p95_ms=p95,
        delay_p99_ms=p99, loss=lost / (delivered + lost) if delivered + lost else None,
        link=chosen[0].link, direction=chosen[0].direction)
    return metrics
