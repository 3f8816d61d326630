"""A small RTC sender/receiver pair over real UDP on 127.0.0.1 for ~2 s.

Sender: video + audio model → packetizer → pacer → socket, stamping the
transport-wide sequence number and abs-send-time as packets leave; it reads
RTCP, matches transport feedback against its send history and runs GCC.
Receiver (a thread): logs every arrival, answers with RR + SDES + transport
feedback every 50 ms, and REMB from a receiver-side estimator every 200 ms.
No shaping on loopback: this checks that the loop works end to end.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from endpoints.rtc.errors import PacketError
from endpoints.rtc.estimators import DEFAULT_POLL_INTERVAL_S, FixedEstimator
from endpoints.rtc.gcc import BandwidthUsage, SendSideBwe
from endpoints.rtc.media import AudioModel, VideoModel
from endpoints.rtc.pacer import Pacer
from endpoints.rtc.packetizer import AUDIO_PAYLOAD_TYPE, VIDEO_PAYLOAD_TYPE, Packetizer
from endpoints.rtc.rtcp import (
    ReceiverReport,
    Remb,
    Sdes,
    TransportFeedback,
    decode_compound,
    encode_compound,
)
from endpoints.rtc.rtp import AbsSendTimeUnwrapper, RtpPacket, is_rtcp
from endpoints.rtc.stats import ArrivalRecord, ReceptionStats
from endpoints.rtc.twcc import FeedbackAdapter, FeedbackBuilder

DURATION_S = 2.0
START_BPS = 300_000
VIDEO_SSRC, AUDIO_SSRC, RECEIVER_SSRC = 0x1000, 0x2000, 0x3000
REMB_BPS = 10_000_000


def now_us() -> int:
    return time.monotonic_ns() // 1000


@dataclass
class ReceiverLog:
    records: list[ArrivalRecord] = field(default_factory=list)
    rtcp_sent: int = 0
    errors: list[str] = field(default_factory=list)


def receiver(sock: socket.socket, stop: threading.Event, log: ReceiverLog) -> None:
    builder = FeedbackBuilder(RECEIVER_SSRC, VIDEO_SSRC, interval_us=50_000)
    reception: dict[int, ReceptionStats] = {}
    unwrapper = AbsSendTimeUnwrapper()
    estimator = FixedEstimator(REMB_BPS)
    sender_address = None
    last_remb_us = 0
    sock.settimeout(0.005)
    while not stop.is_set():
        try:
            data, sender_address = sock.recvfrom(2048)
            arrival = now_us()
            packet = RtpPacket.decode(data)
        except TimeoutError:
            data = b""
        except PacketError as exc:
            log.errors.append(str(exc))
            continue
        if data:
            tsn = packet.transport_sequence_number()
            ast = packet.abs_send_time()
            if tsn is None or ast is None:
                log.errors.append("packet without transport-cc / abs-send-time extension")
                continue
            record = ArrivalRecord.from_packet(
                packet, send_time_ms=unwrapper.unwrap(ast) / 1000,
                arrival_time_ms=arrival / 1000, transport_sequence=tsn)
            log.records.append(record)
            estimator.report_states(record.alphartc_stats())
            builder.on_packet(tsn, arrival)
            clock = 90_000 if packet.ssrc == VIDEO_SSRC else 48_000
            reception.setdefault(packet.ssrc, ReceptionStats(packet.ssrc, clock)).on_packet(
                packet.sequence_number, packet.timestamp, arrival)
        if sender_address is None:
            continue
        now = now_us()
        feedback = builder.maybe_build(now)
        if feedback:
            blocks = tuple(stats.report_block() for stats in reception.values())
            compound: list[ReceiverReport | Sdes | TransportFeedback | Remb] = [
                ReceiverReport(RECEIVER_SSRC, blocks), Sdes(((RECEIVER_SSRC, "rx@nltf"),)),
                *feedback]
            if now - last_remb_us >= DEFAULT_POLL_INTERVAL_S * 1e6:
                compound.append(Remb(RECEIVER_SSRC, estimator.get_estimated_bandwidth(),
                                     (VIDEO_SSRC, AUDIO_SSRC)))
                last_remb_us = now
            sock.sendto(encode_compound(compound), sender_address)
            log.rtcp_sent += 1


def test_rtp_and_transport_feedback_loop_over_loopback() -> None:
    rx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stop = threading.Event()
    log = ReceiverLog()
    thread = threading.Thread(target=receiver, args=(rx_sock, stop, log), daemon=True)
    try:
        rx_sock.bind(("127.0.0.1", 0))
        tx_sock.bind(("127.0.0.1", 0))
        tx_sock.setblocking(False)
        thread.start()
        start = now_us()
        video = VideoModel(START_BPS, seed=7, start_us=start)
        audio = AudioModel(32_000, start_us=start)
        video_packets = Packetizer(VIDEO_SSRC, VIDEO_PAYLOAD_TYPE, video.clock_rate, seed=1)
        audio_packets = Packetizer(AUDIO_SSRC, AUDIO_PAYLOAD_TYPE, audio.clock_rate, seed=2)
        pacer = Pacer(START_BPS)
        bwe = SendSideBwe(START_BPS)
        adapter = FeedbackAdapter()
        transport_seq = 0
        sent = feedback_packets = 0
        fraction_lost: list[int] = []
        usages: list[BandwidthUsage] = []
        remb_seen: list[int] = []
        while (now := now_us()) - start < DURATION_S * 1e6:
            for frame in video.frames_due(now):
                for packet in video_packets.packetize(frame):
                    pacer.enqueue(packet, now)
            for frame in audio.frames_due(now):
                for packet in audio_packets.packetize(frame):
                    pacer.enqueue(packet, now, audio=True)
            for packet in pacer.process(now):
                send_time = now_us()
                packet.set_transport_sequence_number(transport_seq)
                packet.set_abs_send_time(send_time)
                data = packet.encode()
                tx_sock.sendto(data, rx_sock.getsockname())
                adapter.on_packet_sent(transport_seq, send_time, len(data))
                transport_seq = (transport_seq + 1) & 0xFFFF
                sent += 1
            while True:
                try:
                    data = tx_sock.recv(4096)
                except BlockingIOError:
                    break
                assert is_rtcp(data)
                for rtcp in decode_compound(data):
                    if isinstance(rtcp, TransportFeedback):
                        feedback_packets += 1
                        target = bwe.on_feedback(adapter.on_feedback(rtcp), now_us())
                        usages.append(bwe.usage)
                        video.set_target(target, now_us())
                        pacer.set_target(target)
                    elif isinstance(rtcp, ReceiverReport):
                        fraction_lost += [b.fraction_lost for b in rtcp.reports]
                    elif isinstance(rtcp, Remb):
                        remb_seen.append(rtcp.bitrate_bps)
                        bwe.on_remb(rtcp.bitrate_bps)
            time.sleep(max(0.0, (pacer.next_process_time_us() - now_us()) / 1e6))
    finally:
        stop.set()
        thread.join(timeout=5)
        rx_sock.close()
        tx_sock.close()
    assert not thread.is_alive()
    assert log.errors == []
    assert sent > 100
    # Loopback loses nothing; all but the packets in flight at the end were acknowledged.
    assert len(log.records) == sent
    assert bwe.packets_lost == 0 and set(fraction_lost) == {0}
    assert bwe.packets_reported >= sent - 60
    assert feedback_packets >= 0.6 * DURATION_S / 0.05
    assert remb_seen and set(remb_seen) == {Remb.representable(REMB_BPS)}
    # Both streams arrived with their extensions; one-way delay is small and positive.
    assert {r.ssrc for r in log.records} == {VIDEO_SSRC, AUDIO_SSRC}
    # (abs-send-time carries the sender clock modulo 64 s; both ends share one clock here.)
    delays = sorted((r.arrival_time_ms - r.send_time_ms + 1) % 64_000 - 1 for r in log.records)
    assert -0.01 <= delays[len(delays) // 2] < 5
    # GCC saw no congestion and moved the target up (≈ 8 %/s multiplicative increase).
    assert BandwidthUsage.OVERUSING not in usages
    assert bwe.target_bps > START_BPS * 1.05
    assert bwe.rtt_ms is not None and bwe.rtt_ms < 100
    print(f"loopback: sent={sent} feedback={feedback_packets} target={bwe.target_bps:.0f} "
          f"rtt_ms={bwe.rtt_ms:.1f} owd_p50_ms={delays[len(delays) // 2]:.3f} "
          f"owd_p99_ms={delays[int(len(delays) * 0.99)]:.3f}")
