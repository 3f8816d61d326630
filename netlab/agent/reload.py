"""Swapping in new weights without stopping: the control thread hands a built
policy over, and the serving loop takes it between two rounds of decisions, so
no request is dropped and no decision sees half of each."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from netlab.agent.policies.base import Policy
from netlab.agent.requests import FlowState


@dataclass
class PendingReload:
    policy: Policy
    source: str
    done: threading.Event = field(default_factory=threading.Event)
    swapped_after: int = -1


class Reloader:
    """The one slot through which a new policy reaches the loop."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self.pending: PendingReload | None = None

    def request(self, current: Policy, policy: Policy, source: str,
                timeout_s: float = 5.0) -> PendingReload:
        """Control thread: hand ``policy`` over and wait until the loop took it."""
        problem = current.compatible_with(policy)
        if problem is not None:
            raise ValueError(problem)
        pending = PendingReload(policy, source)
        self.pending = pending
        self._wake()
        if not pending.done.wait(timeout_s):
            raise TimeoutError("the serving loop did not take the new policy in time")
        return pending

    def take(self, current: Policy, flows: Iterable[FlowState], decisions: int
             ) -> PendingReload | None:
        """Serving loop: the waiting reload, if any, done. Flows' recurrent states are
        reset when the new policy's state has another shape."""
        pending = self.pending
        if pending is None:
            return None
        self.pending = None
        old_init, new_init = current.initial_state(), pending.policy.initial_state()
        if old_init is None or new_init is None or old_init[0].shape != new_init[0].shape:
            for flow in flows:
                flow.state = None
        pending.swapped_after = decisions
        return pending
