# The actor half of a PPO actor-critic, the shape OpenNetLab's examples use
# (4 state features in, one action in [0, 1] out).
import torch
from torch import nn


class Actor(nn.Module):
    def __init__(self, state_dim=4, hidden=64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 32), nn.Tanh(),
                                 nn.Linear(32, 1), nn.Sigmoid())

    def forward(self, state):
        return self.net(state)


def make_checkpoint(path, seed=0):
    """How model/actor.pth was made: a seeded actor whose last layer is scaled
    down, so its action starts near 0.5 (a factor near 1 on GCC's estimate)."""
    torch.manual_seed(seed)
    actor = Actor()
    with torch.no_grad():
        actor.net[4].weight.mul_(0.05)
        actor.net[4].bias.zero_()
    torch.save(actor.state_dict(), path)


if __name__ == "__main__":
    make_checkpoint("model/actor.pth")
