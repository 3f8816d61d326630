"""The ``tcp-mi5`` contract: an Aurora-style pacing-rate policy for kernel TCP.

The sender (:mod:`endpoints.agent_tcp`) sends five features per monitor
interval, already normalised (latency gradient, latency ratio, sending
ratio, log delivery rate, retransmit ratio) and maps the one action ``a`` to
its rate multiplicatively (α = 0.025), as Aurora does (Jay et al., "A Deep
Reinforcement Learning Perspective on Internet Congestion Control", ICML
2019). The model is Aurora's: an MLP actor-critic with two tanh hidden
layers of 32 and 16 units (PCC-RL's ``net_arch=[{"pi": [32, 16], "vf": [32,
16]}]``); the actor ends in tanh so the action lies in [-1, 1].
"""

from __future__ import annotations

from typing import Any

import torch

from netlab.agent.policies.spec import MlpActorCritic, make_checkpoint

CONTRACT = "tcp-mi5"
OBS_SIZE, ACTION_SIZE = 5, 1
HIDDEN = [32, 16]
EXPLORATION_STD = 0.1
MODEL_SPEC: dict[str, Any] = {"type": "mlp", "actor": HIDDEN, "critic": HIDDEN,
                              "activation": "tanh", "output": "tanh"}
FEATURES = ["latency_gradient", "latency_ratio", "sending_ratio", "delivery_rate_log",
            "retransmit_ratio"]


def initial_checkpoint(seed: int = 0) -> dict[str, Any]:
    """A freshly initialised ``tcp-mi5`` policy in the own format (the start of training).

    The last actor layer is scaled down (×0.01, as PPO implementations initialise
    the policy head) so a fresh policy's actions stay near 0: the rate drifts
    slowly instead of running to a bound before any learning."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = MlpActorCritic(OBS_SIZE, ACTION_SIZE, MODEL_SPEC)
    finally:
        torch.random.set_rng_state(generator_state)
    head = [m for m in model.actor if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(0.01)
        head.bias.zero_()
    return make_checkpoint(
        model, contract=CONTRACT, obs_size=OBS_SIZE, action_size=ACTION_SIZE,
        model_spec=MODEL_SPEC, observation={"type": "identity"},
        action={"type": "identity"}, std=EXPLORATION_STD,
        metadata={"origin": f"initial policy (seed {seed})",
                  "features": ", ".join(FEATURES),
                  "action": "a in [-1, 1]; rate *= 1 + 0.025a (a >= 0) or /= 1 - 0.025a",
                  "reward": "Aurora: 1e-3 * (10 pkt/s - 1000 latency_s - 2000 loss)",
                  "interval_ms": 100})
