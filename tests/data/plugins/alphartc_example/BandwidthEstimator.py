# ruff: noqa: UP004  (written as AlphaRTC users write it)
# Equivalent of OpenNetLab/AlphaRTC's example plugin,
# examples/peerconnection/serverless/corpus/BandwidthEstimator.py (the
# "Estimator with fixed estimated bandwidth 1Mbps" of AlphaRTC's README,
# section PyInfer; AlphaRTC is BSD-3-Clause): it ignores the stats and always
# answers int(1e6). Restated here, not copied; see ../README.md.


class Estimator(object):
    def report_states(self, stats: dict):
        '''
        stats: send_time_ms, arrival_time_ms, payload_type, sequence_number,
        ssrc, padding_length, header_length, payload_size (all ints)
        '''
        pass

    def get_estimated_bandwidth(self) -> int:
        return int(1e6)  # 1 Mbit/s
