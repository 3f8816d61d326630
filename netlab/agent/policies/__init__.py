"""Served policies: the own format, OpenNetLab's PPO state_dict, TorchScript."""

from netlab.agent.policies.base import Policy, PolicyInfo, PolicyOutput, RecurrentState

__all__ = ["Policy", "PolicyInfo", "PolicyOutput", "RecurrentState"]
