"""results.json: the contract scripts rely on.

Keys named in docs/design.md's results contract are never renamed; new keys may
be added beside them.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab import __version__
from netlab.scenario.model import Scenario


@dataclass(frozen=True)
class FlowResult:
    """One ``flows[]`` entry: who, what controlled its rate, and what it got.

    ``metrics`` holds the contract keys (recv_rate_bps, delay_p50/p95/p99_ms,
    loss) and kind-specific extras beside them; ``control`` the kind's own
    keys (``estimator`` for rtc; ``cc``, ``rate_control`` for tcp; ``argv``,
    ``exit_code``, ``started_s``, ``ended_s`` and, with ``ready``, ``ready_s`` for
    command).
    """

    id: str
    kind: str
    src: str  # the sending host; a command flow's host
    dst: str | None  # None: a command flow (one host)
    control: dict[str, Any]
    metrics: dict[str, Any]
    scores: dict[str, Any] = field(default_factory=dict)
    start_s: float | None = None  # None: not scheduled (the link probe)
    stop_s: float | None = None
    logs: str | None = None
    ready_s: float | None = None  # the receiver said ready, on the run's clock
    started_s: float | None = None  # the sender really started, on the run's clock

    def to_json(self) -> dict[str, Any]:
        ends = {"from": self.src, "to": self.dst} if self.dst is not None else {
            "host": self.src}
        entry: dict[str, Any] = {"id": self.id, "kind": self.kind, **ends, **self.control}
        if self.start_s is not None:
            entry |= {"start_s": self.start_s, "stop_s": self.stop_s}
        if self.ready_s is not None or self.started_s is not None:
            entry |= {"ready_s": self.ready_s, "started_s": self.started_s}
        entry |= {"metrics": self.metrics, "scores": self.scores}
        if self.logs is not None:
            entry["logs"] = self.logs
        return entry


def scenario_as_json(scenario: Scenario) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(scenario), default=str))
    return data


def new_run_dir(base: Path, lab: str) -> Path:
    """A fresh ``<lab>-<stamp>`` folder under ``base``, as an absolute path:
    children run in their own working directories, so a relative run
    directory would land inside theirs. Two processes starting in the same
    second (two ``up``s of one scenario) each get their own: ``mkdir`` decides,
    not a look beforehand."""
    base = base.resolve()
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = base / f"{lab}-{stamp}"
    suffix = 1
    while True:
        try:
            path.mkdir()
        except FileExistsError:
            suffix += 1
            path = base / f"{lab}-{stamp}-{suffix}"
            continue
        return path


def build_results(scenario: Scenario, backend: str, flows: list[FlowResult],
                  fidelity: dict[str, Any], *, started: float, ended: float) -> dict[str, Any]:
    return {
        "netlab_version": __version__,
        "kernel": platform.release(),
        "backend": backend,
        "scenario": scenario_as_json(scenario),
        "started": started,
        "ended": ended,
        "flows": [flow.to_json() for flow in flows],
        "agents": [],
        "fidelity": fidelity,
    }


def write_results(run_dir: Path, results: dict[str, Any]) -> Path:
    path = run_dir / "results.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    (run_dir / "fidelity.json").write_text(json.dumps(results["fidelity"], indent=1))
    return path
