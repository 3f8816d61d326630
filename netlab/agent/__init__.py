"""The per-host policy agent: serves a policy's actions to the host's flows over
a Unix socket within a sub-millisecond budget, records transitions for a
learner and swaps weights without stopping."""
