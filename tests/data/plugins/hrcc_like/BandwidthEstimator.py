# ruff: noqa: UP004  (written as OpenNetLab plugin authors write it)
# A learned estimator shaped like the public OpenNetLab ones (HRCC,
# OpenNetLab/Challenge-Example): torch is imported and a PPO actor is loaded
# from the plugin's own folder in Estimator.__init__ ("./model/actor.pth",
# relative to the working directory AlphaRTC runs it in), sibling modules are
# imported (gcc_heuristic, deep_rl), and the actor's action scales a GCC
# heuristic's estimate by 2 ** (2 * action - 1), as HRCC's hybrid does.
# Its state is OpenNetLab's four features over the last 200 ms: receive rate,
# mean one-way delay above the minimum, loss ratio, previous estimate.
import math

import torch
from deep_rl.actor import Actor
from gcc_heuristic import GccHeuristic

MIN_MBPS, MAX_MBPS = 0.01, 8.0


def to_log(bps):
    value = min(max(bps / 1e6, MIN_MBPS), MAX_MBPS)
    return (math.log(value) - math.log(MIN_MBPS)) / (math.log(MAX_MBPS) - math.log(MIN_MBPS))


class Estimator(object):
    def __init__(self, model_path="./model/actor.pth", step_time=200):
        self.actor = Actor()
        self.actor.load_state_dict(torch.load(model_path, weights_only=True))
        self.actor.eval()
        self.gcc = GccHeuristic()
        self.step_time = step_time
        self.recent = []
        self.min_delay = None
        self.last_seq = {}
        self.estimate = 300_000

    def report_states(self, stats):
        self.gcc.report_states(stats)
        delay = stats["arrival_time_ms"] - stats["send_time_ms"]
        self.min_delay = delay if self.min_delay is None else min(self.min_delay, delay)
        lost = 0
        ssrc, seq = stats["ssrc"], stats["sequence_number"]
        if ssrc in self.last_seq:
            gap = (seq - self.last_seq[ssrc]) & 0xFFFF
            lost = gap - 1 if 0 < gap < 0x8000 else 0
        self.last_seq[ssrc] = seq
        self.recent.append((stats["arrival_time_ms"], stats["payload_size"], delay, lost))

    def get_estimated_bandwidth(self):
        gcc_bps = self.gcc.get_estimated_bandwidth()
        if self.recent:
            now = self.recent[-1][0]
            window = [r for r in self.recent if r[0] > now - self.step_time]
            rate = sum(r[1] for r in window) * 8000.0 / self.step_time
            delay = sum(r[2] for r in window) / len(window) - self.min_delay
            lost = sum(r[3] for r in window)
            loss = lost / (lost + len(window))
            state = torch.tensor([to_log(rate), min(delay / 1000, 1.0), loss,
                                  to_log(self.estimate)])
            with torch.no_grad():
                action = float(self.actor(state)[0])
            self.estimate = int(gcc_bps * 2 ** (2 * action - 1))
            self.recent = window
        return self.estimate
