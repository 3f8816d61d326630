"""Matching each packet where it entered a link with where it left it.

Sans-IO: packets come in as (timestamp ns, IPv4 bytes) pairs, results go
out as plain numbers.  A link is a wire between its entry and its exit (no
router on it decrements the TTL, nothing rewrites a header), so the first
``KEY_BYTES`` captured bytes of a packet -- IP header with id, length and
checksum, transport header with ports and TCP seq/ack, the start of the
payload -- are the same on both sides and are the packet's key.  A TCP
retransmission carries a new IP id, so it is a new packet.  Packets that
are identical byte for byte (an application sending the same datagram
twice, an IP id reused with the same content) are matched first in, first
out, which is exact for a FIFO link and swaps only identical packets
otherwise.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

KEY_BYTES = 96  # IPv4 (20-60) + TCP (20-60) or UDP (8) headers + payload start
PROTO_TCP = 6
PROTO_UDP = 17
_MF_OFFSET_MASK = 0x3FFF  # more-fragments flag + fragment offset
_H = struct.Struct("!H")
_PORTED = (PROTO_TCP, PROTO_UDP)
_NO_PORTS = b"\0\0\0\0"

FlowKey = bytes  # proto (1) + src (4) + dst (4) + sport (2) + dport (2)
_Entry = tuple[int, FlowKey]  # entry timestamp ns, 5-tuple


def flow_key(ip: bytes) -> FlowKey:
    """The 5-tuple of an IPv4 packet as 13 bytes (ports zero when absent)."""
    ihl = (ip[0] & 0x0F) * 4
    proto = ip[9]
    fragment = _H.unpack_from(ip, 6)[0] & 0x1FFF
    if proto in (PROTO_TCP, PROTO_UDP) and not fragment and len(ip) >= ihl + 4:
        return ip[9:10] + ip[12:20] + ip[ihl:ihl + 4]
    return ip[9:10] + ip[12:20] + b"\0\0\0\0"


def payload_length(ip: bytes) -> int:
    """Transport payload bytes of an IPv4 packet (IP payload for other
    protocols), from its length fields, so a truncated capture still counts."""
    total = int(_H.unpack_from(ip, 2)[0])
    ihl = (ip[0] & 0x0F) * 4
    if _H.unpack_from(ip, 6)[0] & 0x1FFF:
        return total - ihl
    proto = ip[9]
    if proto == PROTO_UDP:
        return max(0, total - ihl - 8)
    if proto == PROTO_TCP and len(ip) > ihl + 12:
        return max(0, total - ihl - (ip[ihl + 12] >> 4) * 4)
    return total - ihl


@dataclass
class FlowResult:
    """One 5-tuple in one link direction."""

    flow: FlowKey
    delays_ns: array[int] = field(default_factory=lambda: array("q"))  # per delivered packet
    exit_ns: array[int] = field(default_factory=lambda: array("q"))  # its time at the exit
    payloads: array[int] = field(default_factory=lambda: array("q"))  # its payload bytes
    lost_entry_ns: array[int] = field(default_factory=lambda: array("q"))  # per lost packet
    delivered_bytes: int = 0  # IP bytes seen at the exit, matched
    payload_bytes: int = 0  # transport payload of those
    first_ns: int = 0  # first and last delivery at the exit
    last_ns: int = 0
    first_payload: int = 0
    first_bytes: int = 0
    lost: int = 0  # entered, never left, not in flight at the end
    in_flight: int = 0  # entered too close to the end to judge
    unmatched_exit: int = 0  # left without a recorded entry (before the entry capture)

    @property
    def delivered(self) -> int:
        return len(self.delays_ns)


def _result(flows: dict[FlowKey, FlowResult], key: FlowKey) -> FlowResult:
    found = flows.get(key)
    if found is None:
        found = flows[key] = FlowResult(key)
    return found


def match_direction(entries: Iterable[tuple[int, bytes]], exits: Iterable[tuple[int, bytes]],
                    *, end_ns: int | None = None, exit_start_ns: int | None = None,
                    in_flight_ns: int | None = None) -> dict[FlowKey, FlowResult]:
    """Match one link direction's entry packets with its exit packets.

    ``end_ns``: when the exit capture stopped (default: its last packet).  An unmatched
    entry later than ``end_ns - in_flight_ns`` is in flight, not lost;
    ``in_flight_ns`` defaults to twice the largest delay matched plus 50 ms,
    so a queue still draining at the end is not counted as loss.
    ``exit_start_ns``: the first instant the exit capture covers (its ring
    buffer may have dropped older files); earlier entries are not judged.
    """
    pending: dict[int, _Entry | list[_Entry]] = {}  # key hash -> entry, or a FIFO of them
    flow_of: dict[FlowKey, FlowKey] = {}  # one bytes object per 5-tuple
    for ts, ip in entries:
        if ip[0] == 0x45 and not (ip[6] & 0x1F or ip[7]):  # no options, not a fragment
            fk = ip[9:10] + ip[12:24] if ip[9] in _PORTED else ip[9:10] + ip[12:20] + _NO_PORTS
        else:
            fk = flow_key(ip)
        fk = flow_of.setdefault(fk, fk)
        h = hash(ip[:KEY_BYTES])
        seen = pending.get(h)
        if seen is None:
            pending[h] = (ts, fk)
        elif isinstance(seen, list):
            seen.append((ts, fk))
        else:
            pending[h] = [seen, (ts, fk)]

    flows: dict[FlowKey, FlowResult] = {}
    max_delay = 0
    last_exit = -1
    for ts, ip in exits:
        if ts > last_exit:
            last_exit = ts
        h = hash(ip[:KEY_BYTES])
        seen = pending.get(h)
        entry: _Entry | None = None
        if isinstance(seen, tuple):
            if seen[0] <= ts:
                entry = seen
                del pending[h]
        elif seen is not None and seen[0][0] <= ts:
            entry = seen.pop(0)
            if not seen:
                del pending[h]
        if entry is None:
            _result(flows, flow_key(ip)).unmatched_exit += 1
            continue
        result = _result(flows, entry[1])
        delay = ts - entry[0]
        if delay > max_delay:
            max_delay = delay
        size = (ip[2] << 8) | ip[3]
        payload = size - 28 if ip[0] == 0x45 and ip[9] == PROTO_UDP else payload_length(ip)
        if not result.delays_ns:
            result.first_ns, result.first_bytes, result.first_payload = ts, size, payload
        result.delays_ns.append(delay)
        result.exit_ns.append(ts)
        result.payloads.append(payload)
        result.last_ns = ts
        result.delivered_bytes += size
        result.payload_bytes += payload

    if end_ns is None:
        end_ns = last_exit if last_exit >= 0 else max(
            (e[0] for v in pending.values() for e in (v if isinstance(v, list) else [v])),
            default=0)
    horizon = end_ns - (in_flight_ns if in_flight_ns is not None
                        else 2 * max_delay + 50_000_000)
    start = exit_start_ns if exit_start_ns is not None else -1
    for left in pending.values():
        for entered, fk in (left if isinstance(left, list) else [left]):
            if entered < start:
                continue
            result = _result(flows, fk)
            if entered > horizon:
                result.in_flight += 1
            else:
                result.lost += 1
                result.lost_entry_ns.append(entered)
    return flows
