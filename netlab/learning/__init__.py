"""Learning: the fast simulator, the PPO learner, pretraining and the sim-to-lab gap.

Modules are imported where used (``netlab.learning.sim``, ``.ppo``,
``.rollout``, ``.pretrain``, ``.gap``) so a command pays only for what it
runs: torch and gymnasium load only with the learner and the environment.
"""
