"""Train stable-baselines3 PPO on the real lab for a few minutes (needs root).

    sudo .venv/bin/python examples/sb3_gym.py --minutes 3

Each episode is a fresh lab running a Genet-style trace; every step waits
for the RTC receiver's next 200 ms poll, so three minutes is about 900
steps. The environment reports each action's delay (observation sent →
action replied) in ``info``; an action later than the flow's deadline is
not applied, and the printout counts those.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

import netlab.gym  # noqa: F401  (registers netlab/LabRtc-v0)
from netlab.learning.scenario_set import ParamSpace, sample_set


class WallClock(BaseCallback):
    """Stops training after ``seconds`` and collects the env's action delays."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.until = time.monotonic() + seconds
        self.delays: list[float] = []
        self.late = 0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "action_delay_ms" in info:
                self.delays.append(float(info["action_delay_ms"]))
                self.late += 0 if info["action_applied"] else 1
        return time.monotonic() < self.until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=Path("runs/sb3-lab-ppo.zip"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    space = ParamSpace.from_config({"max_bw_mbps": [1, 4], "delay_ms": [10, 40],
                                    "loss_pct": 0}, duration_s=20)
    env: Any = gymnasium.make("netlab/LabRtc-v0", envs=sample_set(space, 8, args.seed),
                              lab="ftsb3", deadline_s=0.05)
    try:
        model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=5,
                    seed=args.seed, verbose=1, device="cpu")
        clock = WallClock(args.minutes * 60)
        model.learn(total_timesteps=10**7, callback=clock)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        model.save(args.out)
        if clock.delays:
            print(f"{len(clock.delays)} steps; action delay p50 "
                  f"{np.percentile(clock.delays, 50):.2f} ms, p99 "
                  f"{np.percentile(clock.delays, 99):.2f} ms; {clock.late} late (not applied)")
        print(f"saved {args.out}")
    finally:
        env.close()


if __name__ == "__main__":
    main()
