"""RTC policies of contract ``rtc-hist``: a history of OpenNetLab states in,
a factor on the estimate out (:class:`endpoints.agent_rtc.RtcContract`).

The observation is N of OpenNetLab's 4-value states, newest first, each
normalised as their ``liner_to_log`` does but up to 32 Mbit/s (their 8 Mbit/s
ceiling would hide every rate of a fast LTE link). The actor's sigmoid output
maps on a log scale to a factor of 0.5–2 on the estimate in force, so a
fresh policy (output near 0.5) starts by holding its estimate.
"""

from __future__ import annotations

from typing import Any

import torch

from endpoints.agent_rtc import HISTORY_CONTRACT, STATE_SIZE, rtc_contract
from netlab.agent.policies.spec import MlpActorCritic, make_checkpoint

CONTRACT = HISTORY_CONTRACT
DEFAULT_HISTORY = 10  # 2 s of 200 ms decisions: several delay-gradient periods
HIDDEN = [128, 64, 32]
EXPLORATION_STD = 0.05
MODEL_SPEC: dict[str, Any] = {"type": "mlp", "actor": HIDDEN, "critic": HIDDEN,
                              "activation": "relu", "output": "sigmoid"}
OBSERVATION: dict[str, Any] = {"type": "opennetlab", "low": 0.01, "high": 32.0, "unit": 1e6}
ACTION: dict[str, Any] = {"type": "log", "low": 0.5, "high": 2.0, "unit": 1.0}


def initial_checkpoint(seed: int = 0, history: int = DEFAULT_HISTORY,
                       step_ms: float = 200) -> dict[str, Any]:
    """A freshly initialised ``rtc-hist`` policy of ``history`` states."""
    contract = rtc_contract(CONTRACT, STATE_SIZE * history)  # ValueError out of 1..64
    torch.manual_seed(seed)
    model = MlpActorCritic(contract.obs_size, 1, MODEL_SPEC)
    # The actor's last layer starts near zero (Andrychowicz et al., "What Matters in
    # On-Policy Reinforcement Learning?", ICLR 2021: ×0.01), so a fresh policy
    # answers a factor of 1 whatever it sees: a random tilt would compound every
    # decision into the floor or the ceiling before learning starts.
    last = model.actor[-2]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.mul_(0.01)
        last.bias.zero_()
    return make_checkpoint(model, contract=CONTRACT, obs_size=contract.obs_size,
                           action_size=1, model_spec=MODEL_SPEC, observation=OBSERVATION,
                           action=ACTION, std=EXPLORATION_STD,
                           metadata={"origin": f"initial rtc-hist policy (seed {seed})",
                                     "history": history, "step_ms": step_ms})
