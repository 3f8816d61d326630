# ruff: noqa: UP004  (written as AlphaRTC users write it)
# A minimal estimator with the interface of OpenNetLab/AlphaRTC's example
# BandwidthEstimator.py (AlphaRTC repository root): AlphaRTC constructs
# Estimator() without arguments, calls report_states() once per received RTP
# packet and get_estimated_bandwidth() when it wants an estimate in bps. Like
# that example, it ignores the stats and alternates between two float rates.
# Kept free of netlab imports on purpose: it must run unchanged.


class Estimator(object):
    def __init__(self):
        self.calls = 0
        self.rates = [1e6, 2e6]

    def report_states(self, stats: dict):
        '''
        stats is a dict with the following items
        {
            "send_time_ms": uint,
            "arrival_time_ms": uint,
            "payload_type": int,
            "sequence_number": uint,
            "ssrc": int,
            "padding_length": uint,
            "header_length": uint,
            "payload_size": uint
        }
        '''
        pass

    def get_estimated_bandwidth(self)->int:
        rate = self.rates[self.calls % len(self.rates)]
        self.calls += 1
        return rate
