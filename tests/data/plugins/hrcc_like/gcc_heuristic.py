# ruff: noqa: UP004  (written as OpenNetLab plugin authors write it)
# A receiver-side GCC heuristic with AlphaRTC's plugin interface, restating the
# algorithm of the GCC-style estimators published for OpenNetLab/AlphaRTC
# (HRCC, thegreatwb/HRCC BandwidthEstimator_gcc.py, MMSys'21 grand challenge)
# in our own code, with libwebrtc's constants (draft-ietf-rmcat-gcc-02;
# modules/congestion_controller/goog_cc/trendline_estimator.cc,
# modules/remote_bitrate_estimator/aimd_rate_control.cc). Each poll it takes
# the packets reported since the previous one:
#   delay: packet groups of 5 ms of send time, the delay gradient between
#     groups, the trendline slope over 20 groups of the smoothed accumulated
#     delay, an adaptive-threshold overuse detector, and AIMD (x1.08 per
#     second up, 0.85 x receive rate down);
#   loss: sequence gaps per SSRC; > 10 % cuts by half the loss, < 2 % adds 5 %.
# The estimate is the smaller of the two. Free of netlab imports on purpose.
import collections

BURST_MS = 5.0
WINDOW = 20
SMOOTHING = 0.9
THRESHOLD_GAIN = 4.0
MIN_DELTAS = 60
OVERUSE_MS = 10.0
K_UP, K_DOWN = 0.0087, 0.039
MAX_ADAPT_OFFSET_MS = 15.0
ETA, ALPHA = 1.08, 0.85
MIN_BPS, MAX_BPS = 50_000, 20_000_000


class GccHeuristic(object):
    def __init__(self, start_bps=300_000):
        self.estimate = float(start_bps)
        self.packets = []
        self.highest_seq = {}
        self.lost = 0
        self.received = 0
        self.group = None  # [first send ms, last send ms, last arrival ms]
        self.previous_group = None
        self.first_arrival = None
        self.accumulated = 0.0
        self.smoothed = 0.0
        self.window = collections.deque(maxlen=WINDOW)
        self.deltas = 0
        self.threshold = 12.5
        self.last_threshold_ms = None
        self.overuse_ms = -1.0
        self.overuse_count = 0
        self.previous_trend = 0.0
        self.signal = "normal"
        self.state = "increase"
        self.last_change_ms = None

    # -- per packet ---------------------------------------------------------
    def report_states(self, stats):
        send, arrival = stats["send_time_ms"], stats["arrival_time_ms"]
        size = stats["header_length"] + stats["payload_size"]
        self.packets.append((arrival, size))
        ssrc, seq = stats["ssrc"], stats["sequence_number"]
        if ssrc in self.highest_seq:
            gap = (seq - self.highest_seq[ssrc]) & 0xFFFF
            if gap >= 0x8000:
                return  # reordered or repeated
            self.lost += gap - 1
        self.highest_seq[ssrc] = seq
        self.received += 1
        if self.group is None or send - self.group[0] > BURST_MS:
            if self.group is not None:
                self._on_group(self.group)
            self.group = [send, send, arrival]
        else:
            self.group[1], self.group[2] = max(self.group[1], send), arrival

    def _on_group(self, group):
        if self.previous_group is not None:
            send_delta = group[1] - self.previous_group[1]
            arrival_delta = group[2] - self.previous_group[2]
            self._trendline(arrival_delta - send_delta, group[2], send_delta)
        self.previous_group = group

    def _trendline(self, gradient, arrival_ms, send_delta):
        if self.first_arrival is None:
            self.first_arrival = arrival_ms
        self.deltas += 1
        self.accumulated += gradient
        self.smoothed = SMOOTHING * self.smoothed + (1 - SMOOTHING) * self.accumulated
        self.window.append((arrival_ms - self.first_arrival, self.smoothed))
        if len(self.window) < WINDOW:
            return
        xs = [x for x, _ in self.window]
        ys = [y for _, y in self.window]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        trend = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0
        self._detect(trend, arrival_ms, send_delta)

    def _detect(self, trend, now_ms, send_delta):
        modified = min(self.deltas, MIN_DELTAS) * trend * THRESHOLD_GAIN
        if modified > self.threshold:
            if self.overuse_ms < 0:
                self.overuse_ms = send_delta / 2
            else:
                self.overuse_ms += send_delta
            self.overuse_count += 1
            if (self.overuse_ms > OVERUSE_MS and self.overuse_count > 1
                    and trend >= self.previous_trend):
                self.overuse_ms, self.overuse_count = 0.0, 0
                self.signal = "overuse"
        elif modified < -self.threshold:
            self.overuse_ms, self.overuse_count = -1.0, 0
            self.signal = "underuse"
        else:
            self.overuse_ms, self.overuse_count = -1.0, 0
            self.signal = "normal"
        self.previous_trend = trend
        if self.last_threshold_ms is None:
            self.last_threshold_ms = now_ms
        if abs(modified) <= self.threshold + MAX_ADAPT_OFFSET_MS:
            k = K_DOWN if abs(modified) < self.threshold else K_UP
            dt = min(now_ms - self.last_threshold_ms, 100)
            self.threshold += k * (abs(modified) - self.threshold) * dt
            self.threshold = min(max(self.threshold, 6.0), 600.0)
        self.last_threshold_ms = now_ms

    # -- per poll -----------------------------------------------------------
    def get_estimated_bandwidth(self):
        if not self.packets:
            return int(self.estimate)
        now = self.packets[-1][0]
        span_ms = max(1, now - self.packets[0][0])
        receive_bps = sum(size for _, size in self.packets) * 8000.0 / span_ms
        delay_based = self._aimd(now, receive_bps)
        expected = self.lost + self.received
        loss = self.lost / expected if expected else 0.0
        loss_based = self.estimate
        if loss > 0.1:
            loss_based = self.estimate * (1 - 0.5 * loss)
        elif loss < 0.02:
            loss_based = self.estimate * 1.05
        self.estimate = min(max(min(delay_based, loss_based), MIN_BPS), MAX_BPS)
        self.packets, self.lost, self.received = [], 0, 0
        return int(self.estimate)

    def _aimd(self, now_ms, receive_bps):
        if self.signal == "overuse":
            self.state = "decrease"
        elif self.signal == "underuse":
            self.state = "hold"
        elif self.state != "increase":
            self.state = "increase" if self.state == "hold" else "hold"
        elapsed_s = 0.2
        if self.last_change_ms is not None:
            elapsed_s = min((now_ms - self.last_change_ms) / 1000, 1.0)
        self.last_change_ms = now_ms
        if self.state == "increase":
            return min(self.estimate * ETA ** elapsed_s, 3 * receive_bps + 10)
        if self.state == "decrease":
            self.signal = "normal"
            self.state = "hold"
            return min(self.estimate, ALPHA * receive_bps)
        return self.estimate
