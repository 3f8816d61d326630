# The actor-critic whose state_dict OpenNetLab publishes (actor.{0,2,4,6},
# critic.{0,2,4,6}: 4 -> 128 -> 64 -> 32 -> 1, ReLU, sigmoid action), as in
# OpenNetLab/gym-example deep_rl/actor_critic.py; our code.
import torch
from torch import nn


class ActorCritic(nn.Module):
    def __init__(self, state_dim=4, action_dim=1, exploration_param=0.05):
        super().__init__()
        self.actor = nn.Sequential(nn.Linear(state_dim, 128), nn.ReLU(), nn.Linear(128, 64),
                                   nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                                   nn.Linear(32, action_dim), nn.Sigmoid())
        self.critic = nn.Sequential(nn.Linear(state_dim, 128), nn.ReLU(), nn.Linear(128, 64),
                                    nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
        self.action_var = torch.full((action_dim,), exploration_param ** 2)

    def forward(self, state):
        with torch.no_grad():
            return self.actor(state), self.critic(state)
