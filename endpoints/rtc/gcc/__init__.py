"""Google Congestion Control (draft-ietf-rmcat-gcc-02) with libwebrtc's constants.

One module per stage; :class:`SendSideBwe` combines them: feed it the
per-packet results of transport-wide feedback, read the target bitrate.
"""

from endpoints.rtc.gcc.acked_bitrate import AckedBitrateEstimator
from endpoints.rtc.gcc.aimd import AimdRateControl, LinkCapacityEstimator, RateControlState
from endpoints.rtc.gcc.inter_arrival import Deltas, InterArrival
from endpoints.rtc.gcc.loss_based import LossBasedControl
from endpoints.rtc.gcc.overuse_detector import BandwidthUsage, OveruseDetector
from endpoints.rtc.gcc.send_side import SendSideBwe
from endpoints.rtc.gcc.trendline import TrendlineEstimator

__all__ = [
    "AckedBitrateEstimator",
    "AimdRateControl",
    "BandwidthUsage",
    "Deltas",
    "InterArrival",
    "LinkCapacityEstimator",
    "LossBasedControl",
    "OveruseDetector",
    "RateControlState",
    "SendSideBwe",
    "TrendlineEstimator",
]
