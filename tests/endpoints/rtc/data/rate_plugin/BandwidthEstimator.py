# ruff: noqa: UP004  (written as AlphaRTC users write it)
# An AlphaRTC-style plugin laid out like OpenNetLab's Challenge-Example: it
# imports a sibling package (utils) and reads a file relative to its own
# folder at construction ("./model/..."). It estimates the receive rate from
# the stats it is given, so a test can check the numbers reached it.
import json

from utils.packet_record import PacketRecord


class Estimator(object):
    def __init__(self, config_path="./model/config.json"):
        with open(config_path) as f:
            config = json.load(f)
        self.window_ms = config["window_ms"]
        self.record = PacketRecord()
        self.keys_seen = set()

    def report_states(self, stats: dict):
        self.keys_seen.update(stats)
        self.record.on_receive(stats["arrival_time_ms"],
                               stats["header_length"] + stats["payload_size"]
                               + stats["padding_length"])

    def get_estimated_bandwidth(self)->int:
        return self.record.receiving_rate_bps(self.window_ms)
