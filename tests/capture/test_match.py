"""The matcher and the pcap reader on hand-built packets: duplicates, loss,
reordering, in-flight packets at the end, a ring that dropped old files."""

from __future__ import annotations

import struct
from array import array
from pathlib import Path

import pytest

from netlab.capture.match import FlowResult, flow_key, match_direction, payload_length
from netlab.capture.pcap import LINKTYPE_ETHERNET, ip_offset, read_packets
from netlab.capture.series import flow_columns
from netlab.capture.traffic import TrafficRow, flow_metrics, row_from

MS = 1_000_000
SRC, DST = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def udp(ident: int, payload: bytes = b"x" * 100, sport: int = 4000, dport: int = 5000) -> bytes:
    total = 20 + 8 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0x4000, 64, 17, 0, SRC, DST)
    return header + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(ident: int, seq: int, payload: bytes = b"") -> bytes:
    total = 20 + 20 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0x4000, 64, 6, 0, SRC, DST)
    return header + struct.pack("!HHIIBBHHH", 4000, 80, seq, 0, 5 << 4, 0x10, 65535, 0, 0) + payload


def test_every_packet_delivered_in_order_gives_its_exact_delay() -> None:
    entries = [(i * 10 * MS, udp(i)) for i in range(100)]
    exits = [(ts + 20 * MS + i * 1000, ip) for i, (ts, ip) in enumerate(entries)]
    (result,) = match_direction(entries, exits).values()
    assert result.delivered == 100 and result.lost == 0 and result.unmatched_exit == 0
    assert list(result.delays_ns) == [20 * MS + i * 1000 for i in range(100)]
    row = row_from("l", "up", result)
    assert (row.src, row.dst, row.sport, row.dport, row.proto) == (
        "10.0.0.1", "10.0.0.2", 4000, 5000, "udp")
    assert row.bytes == 100 * 128 and row.payload_bytes == 100 * 100
    # 99 packets' payload after the first over 99 intervals of 10.001 ms
    assert row.recv_rate_bps is not None
    assert abs(row.recv_rate_bps - 99 * 800 / (99 * 0.010001)) < 1e-6


def test_reordered_exits_match_their_own_entries() -> None:
    entries = [(i * MS, udp(i)) for i in range(10)]
    delays = [30, 5, 22, 9, 40, 1, 17, 3, 28, 11]
    exits = sorted(((ts + d * MS, ip) for (ts, ip), d in zip(entries, delays, strict=True)),
                   key=lambda p: p[0])
    (result,) = match_direction(entries, exits).values()
    assert sorted(result.delays_ns) == sorted(d * MS for d in delays)


def test_lost_packets_are_counted_and_the_tail_is_in_flight() -> None:
    entries = [(i * 10 * MS, udp(i)) for i in range(100)]
    dropped = {5, 17, 60}
    exits = [(ts + 20 * MS, ip) for i, (ts, ip) in enumerate(entries)
             if i not in dropped and i < 98]
    end = entries[-1][0] + 5 * MS  # the last two had not left when the capture ended
    (result,) = match_direction(entries, exits, end_ns=end).values()
    assert (result.delivered, result.lost, result.in_flight) == (95, 3, 2)
    assert row_from("l", "up", result).loss == 3 / 98


def test_identical_packets_match_first_in_first_out() -> None:
    same = udp(7)
    entries = [(0, same), (10 * MS, same), (20 * MS, same)]
    exits = [(25 * MS, same), (35 * MS, same), (45 * MS, same), (46 * MS, same)]
    (result,) = match_direction(entries, exits).values()
    assert list(result.delays_ns) == [25 * MS, 25 * MS, 25 * MS]
    assert result.unmatched_exit == 1  # a duplicate made on the link


def test_a_tcp_retransmission_is_a_new_packet_and_ids_may_repeat_across_flows() -> None:
    first, again = tcp(1, 1000, b"a" * 50), tcp(2, 1000, b"a" * 50)  # new IP id on resend
    other = udp(1, sport=4001)  # the same IP id in another flow
    entries = [(0, first), (200 * MS, again), (1 * MS, other)]
    exits = [(220 * MS, again), (21 * MS, other)]
    flows = match_direction(entries, exits, end_ns=10_000 * MS)
    tcp_result = flows[flow_key(first)]
    assert list(tcp_result.delays_ns) == [20 * MS] and tcp_result.lost == 1
    assert list(flows[flow_key(other)].delays_ns) == [20 * MS]
    assert payload_length(first) == 50


def test_entries_before_a_wrapped_exit_ring_are_not_judged() -> None:
    entries = [(i * 10 * MS, udp(i)) for i in range(50)]
    # older exit files dropped by the ring; packet 30 lost on the link
    exits = [(ts + 20 * MS, ip) for i, (ts, ip) in enumerate(entries) if i >= 20 and i != 30]
    (result,) = match_direction(entries, exits, exit_start_ns=exits[0][0]).values()
    assert (result.delivered, result.lost) == (29, 1)
    (unwindowed,) = match_direction(entries, exits).values()
    assert unwindowed.lost == 21  # what a matcher blind to the ring would call loss


def _pcapng(packets: list[tuple[int, bytes]], linktype: int) -> bytes:
    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    out += block(1, struct.pack("<HHI", linktype, 0, 128) + tsresol)
    for ts, data in packets:
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                    len(data)) + data)
    return out


def test_pcapng_reader_gives_nanosecond_timestamps_and_finds_ip(tmp_path: Path) -> None:
    frames = [(1_796_000_000_123_456_789 + i, b"\0" * 12 + b"\x08\x00" + udp(i))
              for i in range(3)]
    path = tmp_path / "x.pcapng"
    path.write_bytes(_pcapng(frames, LINKTYPE_ETHERNET))
    read = list(read_packets(path))
    assert [ts for ts, _, _ in read] == [ts for ts, _ in frames]
    assert all(ip_offset(lt, data) == 14 for _, lt, data in read)
    path.write_bytes(path.read_bytes()[:-10])  # a block torn by a killed capture
    assert len(list(read_packets(path))) == 2


def _row(link: str, sport: int, delays_ms: list[float], span_s: tuple[float, float],
         lost: int = 0, src: str = "10.0.0.1", payload: int = 1000, proto: str = "udp",
         ) -> TrafficRow:
    """A row of ``len(delays_ms)`` packets of ``payload`` bytes delivered
    evenly over ``span_s``."""
    first_ns, last_ns = int(span_s[0] * 1e9), int(span_s[1] * 1e9)
    count = len(delays_ms)
    samples = FlowResult(b"", delays_ns=array("q", [int(d * MS) for d in delays_ms]),
                         payload_bytes=payload * count, first_ns=first_ns, last_ns=last_ns,
                         first_payload=payload)
    rate = payload * (count - 1) * 8e9 / (last_ns - first_ns) if last_ns > first_ns else None
    return TrafficRow(link, "up", proto, src, "10.0.0.2", sport, 5000, count,
                      (payload + 28) * count, rate, None, None, None, None, lost=lost,
                      payload_bytes=payload * count, samples=samples)


def test_a_command_flows_metrics_come_from_what_its_host_sent() -> None:
    rows = [
        _row("l1", 1, [10.0] * 91, (1.0, 10.0), lost=9),  # the data stream: 80 kbit/s
        _row("l1", 2, [30.0] * 10, (0.5, 11.0), payload=10),  # its control connection
        _row("l0", 1, [1.0] * 50, (1.0, 10.0)),  # the same stream on a captured first hop
        _row("l1", 3, [99.0] * 100, (0.0, 5.0), src="10.0.0.9"),  # another host's traffic
    ]
    metrics = flow_metrics(rows, ["10.0.0.1", "10.0.1.1"])
    assert metrics["link"] == "l1"  # the link that delivered most of its bytes
    # Over the data's 9 s, not the control connection's 10.5 s; its bytes count.
    assert metrics["recv_rate_bps"] == pytest.approx((91_000 + 100 - 1000) * 8 / 9.0)
    assert metrics["loss"] == 9 / 110
    assert (metrics["delay_p50_ms"], metrics["delay_p99_ms"]) == (10.0, 30.0)
    assert flow_metrics(rows, "10.0.0.7")["recv_rate_bps"] is None
    assert "samples" not in rows[0].to_json() and rows[0].to_json()["sport"] == 1


def test_a_hosts_rate_neither_counts_sequential_flows_twice_nor_a_stray_burst() -> None:
    # Two 4 s transfers one after the other at 200 kbit/s, with a gap of 2 s,
    # and a 2-packet ICMP error 9 ms apart (alone: 0.5 Mbit/s).
    rows = [
        _row("l1", 1, [10.0] * 101, (0.0, 4.0)),
        _row("l1", 2, [10.0] * 101, (6.0, 10.0)),
        _row("l1", 0, [10.0] * 2, (4.0, 4.009), payload=576, proto="icmp"),
    ]
    assert rows[2].recv_rate_bps == pytest.approx(576 * 8 / 0.009)
    rate = flow_metrics(rows, "10.0.0.1")["recv_rate_bps"]
    # Not 400 kbit/s (the two rates summed), not 0.9 Mbit/s (with the ICMP).
    assert rate == pytest.approx((202_000 + 1152 - 1000) * 8 / 8.0)


def test_a_flows_time_series_bins_rate_delay_and_loss() -> None:
    entries = [(i * 10 * MS, udp(i)) for i in range(100)]  # 1 s at 100 packets/s
    exits = [(ts + (20 + 30 * (i >= 50)) * MS, ip) for i, (ts, ip) in enumerate(entries)
             if not (70 <= i < 80)]
    rows = [row_from("l", "up", r) for r in match_direction(entries, exits).values()]
    columns = flow_columns(rows, 0, 1000 * MS, bin_ns=100 * MS)
    assert columns["recv_rate_bps"][3] == 10 * 100 * 8 / 0.1  # ten 100-byte payloads
    assert columns["delay_ms"][2] == 20.0 and columns["delay_ms"][8] == 50.0
    assert columns["loss"][7] == 1.0 and columns["loss"][6] == 0.0
    assert columns["recv_rate_bps"][0] == 8 * 100 * 8 / 0.1  # the first left at 20 ms
