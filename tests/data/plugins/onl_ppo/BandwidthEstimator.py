# ruff: noqa: UP004  (written as OpenNetLab plugin authors write it)
# Shaped like OpenNetLab/Challenge-Example's BandwidthEstimator.py (a PPO
# estimator; that repository has no licence, so this is our code doing what
# it does): torch and OpenNetLab's pretrained actor-critic loaded in
# __init__ from ./model/pretrained_model.pth (a copy of
# models/opennetlab-pretrained.pth, OpenNetLab gym-example, BSD-3-Clause),
# the 4 features over the last 60 ms, the action mapped log-linearly onto
# 10 kbit/s-8 Mbit/s, a new estimate only when packets came since the last
# poll, and, like the original, the answer returned as the numpy value the
# mapping gives (AlphaRTC's cmdinfer int()s it).
import numpy as np
import torch
from deep_rl.actor_critic import ActorCritic
from utils.packet_record import PacketRecord

UNIT_M = 1000000
MAX_BANDWIDTH_MBPS, MIN_BANDWIDTH_MBPS = 8, 0.01
LOG_MAX, LOG_MIN = np.log(MAX_BANDWIDTH_MBPS), np.log(MIN_BANDWIDTH_MBPS)


def liner_to_log(value):
    value = np.clip(value / UNIT_M, MIN_BANDWIDTH_MBPS, MAX_BANDWIDTH_MBPS)
    return (np.log(value) - LOG_MIN) / (LOG_MAX - LOG_MIN)


def log_to_linear(value):
    value = np.clip(value, 0, 1)
    return np.exp(value * (LOG_MAX - LOG_MIN) + LOG_MIN) * UNIT_M


class Estimator(object):
    def __init__(self, model_path="./model/pretrained_model.pth", step_time=60):
        self.model = ActorCritic(4, 1, 0.05)
        self.model.load_state_dict(torch.load(model_path, weights_only=True))
        self.packet_record = PacketRecord()
        self.bandwidth_prediction = 1e6
        self.step_time = step_time
        self.last_action = None

    def report_states(self, stats: dict):
        self.last_action = "report_states"
        self.packet_record.on_receive(stats, self.bandwidth_prediction)

    def get_estimated_bandwidth(self) -> int:
        if self.last_action == "report_states":
            self.last_action = "get_estimated_bandwidth"
            record, step = self.packet_record, self.step_time
            states = [liner_to_log(record.receiving_rate(step)),
                      min(record.average_delay(step) / 1000, 1),
                      record.loss_ratio(step),
                      liner_to_log(record.latest_prediction())]
            action, _value = self.model.forward(torch.Tensor(np.array(states, dtype=np.float32)))
            self.bandwidth_prediction = log_to_linear(action.numpy()[0])
        return self.bandwidth_prediction
