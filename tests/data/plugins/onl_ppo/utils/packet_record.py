# The 60-ms state features of OpenNetLab's examples (alphartc_gym/utils/
# packet_record.py: receive rate, mean delay above the first packet's, loss
# ratio from sequence gaps, last prediction), restated; our code.


class PacketRecord:
    def __init__(self):
        self.packets = []  # (arrival ms, delay ms, payload bytes, lost before it, prediction)
        self.last_seq = {}
        self.delay_offset = None

    def on_receive(self, stats, prediction):
        lost = 0
        ssrc, seq = stats["ssrc"], stats["sequence_number"]
        if ssrc in self.last_seq:
            lost = max(0, seq - self.last_seq[ssrc] - 1)
        self.last_seq[ssrc] = seq
        delay = stats["arrival_time_ms"] - stats["send_time_ms"]
        if self.delay_offset is None:
            self.delay_offset = -delay  # the first packet's delay counts as 0
        self.packets.append((stats["arrival_time_ms"], delay + self.delay_offset,
                             stats["payload_size"], lost, prediction))

    def window(self, interval_ms):
        if not self.packets:
            return []
        start = self.packets[-1][0] - interval_ms
        return [p for p in self.packets if p[0] > start]

    def receiving_rate(self, interval_ms):
        return sum(p[2] for p in self.window(interval_ms)) * 8 / interval_ms * 1000

    def average_delay(self, interval_ms):
        window = self.window(interval_ms)
        return sum(p[1] for p in window) / len(window) if window else 0

    def loss_ratio(self, interval_ms):
        window = self.window(interval_ms)
        lost = sum(p[3] for p in window)
        return lost / (lost + len(window)) if window else 0

    def latest_prediction(self):
        return self.packets[-1][4] if self.packets else 0
