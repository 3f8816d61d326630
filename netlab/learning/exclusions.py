"""Episodes left out, counted per controller.

An evaluation or a fine-tune that drops the episodes whose fidelity report
failed is only fair if the drops do not fall on one controller: a policy
whose episodes load the machine more loses its worst episodes. Every report
therefore says, per controller, how many episodes ran, how many failed
(the lab or the flow did not finish, or left nothing to learn from) and how
many were unfaithful, and whether those were left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from netlab.learning.labs import EpisodeResult


@dataclass
class Counts:
    ran: int = 0
    failed: int = 0
    unfaithful: int = 0  # ran to the end, but the fidelity report did not pass

    def count(self, result: EpisodeResult, require_faithful: bool, *,
              enough: bool = True) -> bool:
        """Tally ``result``; True when it is kept. ``enough``: the caller's own
        test that it left something to use (a learner's transitions)."""
        self.ran += 1
        if result.error is not None or result.score is None or not enough:
            self.failed += 1
            return False
        if not result.faithful:
            self.unfaithful += 1
            return not require_faithful
        return True

    def add(self, other: Counts) -> None:
        self.ran += other.ran
        self.failed += other.failed
        self.unfaithful += other.unfaithful

    def left_out(self, require_faithful: bool) -> int:
        return self.failed + (self.unfaithful if require_faithful else 0)

    def as_dict(self, require_faithful: bool) -> dict[str, int]:
        left = self.left_out(require_faithful)
        return {"ran": self.ran, "kept": self.ran - left, "left_out": left,
                "unfaithful": self.unfaithful, "failed": self.failed}
