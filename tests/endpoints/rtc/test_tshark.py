"""What we put on the wire, as Wireshark's dissectors read it (tshark).

Goes deeper than scapy for transport-cc and REMB: tshark decodes every
status chunk and receive delta, and the REMB mantissa/exponent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from endpoints.rtc.rtcp import (
    ReceiverReport,
    Remb,
    ReportBlock,
    Sdes,
    SenderReport,
    TransportFeedback,
    encode_compound,
)
from endpoints.rtc.rtp import RtpPacket, abs_send_time_from_us
from endpoints.rtc.twcc import FeedbackBuilder, feedback_arrivals

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed "
                                "(apt-get install -y tshark)")
RTP_PORT, RTCP_PORT = 5004, 5005


def tshark_fields(pcap: Path, fields: list[str], display_filter: str | None = None) -> list[
        list[str]]:
    assert TSHARK is not None
    command = [TSHARK, "-r", str(pcap), "-d", f"udp.port=={RTP_PORT},rtp",
               "-d", f"udp.port=={RTCP_PORT},rtcp", "-T", "fields",
               "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
    if display_filter:
        command += ["-Y", display_filter]
    for field in fields:
        command += ["-e", field]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("|") for line in result.stdout.splitlines()]


def write_pcap(path: Path, datagrams: list[tuple[int, bytes]]) -> None:
    frames = [Ether() / IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=40000, dport=port)
              / Raw(data) for port, data in datagrams]
    wrpcap(str(path), frames)


def build_feedback() -> list[TransportFeedback]:
    builder = FeedbackBuilder(sender_ssrc=0x1111, media_ssrc=0x2222)
    for i in range(60):
        if i % 9 == 4:
            continue  # lost
        jump = 80_000 if i == 30 else 0  # a late packet: large delta, then a negative one
        builder.on_packet((65500 + i) & 0xFFFF, 1_000_000 + i * 1_250 + jump)
    return builder.build()


def test_tshark_reads_our_rtp_and_rtcp(tmp_path: Path) -> None:
    rtp = RtpPacket(96, 4321, 123_456, 0xDEADBEEF, marker=True, payload=bytes(1200))
    rtp.set_transport_sequence_number(65535)
    rtp.set_abs_send_time(5_250_000)
    feedback = build_feedback()
    block = ReportBlock(0x2222, 51, 7, 70_000, 321, 0x12345678, 655)
    compound = encode_compound([
        ReceiverReport(0x1111, (block,)), Sdes(((0x1111, "receiver@netlab"),)), *feedback,
        Remb(0x1111, 2_345_678, (0x2222,))])
    sender_report = encode_compound([SenderReport(0x2222, 0x0123456789ABCDEF, 9000, 10, 12000)])
    pcap = tmp_path / "rtc.pcap"
    write_pcap(pcap, [(RTP_PORT, rtp.encode()), (RTCP_PORT, compound),
                      (RTCP_PORT, sender_report)])

    assert tshark_fields(pcap, ["frame.number"], "_ws.malformed || _ws.expert.severity >= 6291456"
                         " || rtcp.rtpfb.transportcc_bad") == []

    (row,) = tshark_fields(pcap, ["rtp.seq", "rtp.marker", "rtp.p_type", "rtp.timestamp",
                                  "rtp.ssrc", "rtp.ext.profile", "rtp.ext.rfc5285.id",
                                  "rtp.ext.rfc5285.data"], "rtp")
    assert row[:5] == ["4321", "1", "96", "123456", "0xdeadbeef"]
    assert int(row[5], 16) == 0xBEDE
    assert row[6] == "5,3"
    tsn, ast = row[7].split(",")
    assert int(tsn.replace(":", ""), 16) == 65535
    assert int(ast.replace(":", ""), 16) == abs_send_time_from_us(5_250_000)

    rows = tshark_fields(pcap, ["rtcp.pt", "rtcp.ssrc.fraction", "rtcp.ssrc.cum_nr",
                                "rtcp.ssrc.jitter", "rtcp.sdes.text",
                                "rtcp.rtpfb.transportcc.baseseq",
                                "rtcp.rtpfb.transportcc.statuscount",
                                "rtcp.rtpfb.transportcc.reftime",
                                "rtcp.rtpfb.transportcc.pktcount",
                                "rtcp.psfb.remb.fci.br_mantissa", "rtcp.psfb.remb.fci.br_exp",
                                "rtcp.sender.packetcount"], "rtcp")
    compound_row, sr_row = rows
    expected_types = ["201", "202"] + ["205"] * len(feedback) + ["206"]
    assert compound_row[0].split(",") == expected_types
    assert compound_row[1:5] == ["51", "7", "321", "receiver@netlab"]
    assert compound_row[5].split(",") == [str(f.base_sequence) for f in feedback]
    assert compound_row[6].split(",") == [str(len(f.deltas)) for f in feedback]
    assert compound_row[7].split(",") == [str(f.reference_time) for f in feedback]
    assert compound_row[8].split(",") == [str(f.feedback_count) for f in feedback]
    assert int(compound_row[9]) << int(compound_row[10]) == Remb.representable(2_345_678)
    assert sr_row[0] == "200" and sr_row[11] == "10"


def test_tshark_receive_deltas_match_ours(tmp_path: Path) -> None:
    feedback = build_feedback()
    pcap = tmp_path / "twcc.pcap"
    write_pcap(pcap, [(RTCP_PORT, f.encode()) for f in feedback])
    (row,) = tshark_fields(pcap, ["rtcp.rtpfb.transportcc.recv_delta"])[:1]
    # tshark prints each delta's raw value (1 byte, or 2 bytes two's complement).
    raw = [int(v, 16) if v.startswith("0x") else int(v) for v in row[0].split(",")]
    ours = [d & (0xFF if 0 <= d <= 0xFF else 0xFFFF)
            for d in feedback[0].deltas if d is not None]
    assert raw == ours
    received = [a for _, a in feedback_arrivals(feedback[0]) if a is not None]
    assert len(raw) == len(received) == 60 - 7
