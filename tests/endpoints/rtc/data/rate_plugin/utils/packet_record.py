# ruff: noqa: UP004  (written as AlphaRTC users write it)
class PacketRecord(object):
    def __init__(self):
        self.packets = []

    def on_receive(self, arrival_time_ms, size):
        self.packets.append((arrival_time_ms, size))

    def receiving_rate_bps(self, window_ms):
        if not self.packets:
            return 0
        last = self.packets[-1][0]
        recent = [size for t, size in self.packets if t > last - window_ms]
        return 8000.0 * sum(recent) / window_ms
