"""The run's side of link capture (``capture:`` on a link): start the
captures with the run, and after it turn them into ``traffic[]`` rows and
command flows' metrics. The capture itself is :mod:`netlab.capture`'s
(``start_capture``, ``analyse``, ``flow_metrics``), imported by name so the
run pipeline does not load it for links that capture nothing."""

from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from netlab.errors import NetlabError
from netlab.lab.plan import LabPlan
from netlab.run.collect import write_csv
from netlab.run.results import FlowResult
from netlab.scenario.model import Scenario

if TYPE_CHECKING:
    from netlab.lab import lifecycle


class Capture(Protocol):
    def stop(self) -> None: ...


def start(scenario: Scenario, lab: lifecycle.Lab, run_dir: Path) -> Capture | None:
    """Start recording every link direction the scenario asks; None when none."""
    asked = [(link.name, link.capture) for link in scenario.links if link.capture]
    if not asked:
        return None
    try:
        capture = importlib.import_module("netlab.capture")
    except ImportError as exc:
        raise NetlabError("this netlab has no packet capture (netlab.capture)",
                          where=f"links ({', '.join(name for name, _ in asked)}).capture",
                          fix="remove capture: from the links, or update netlab") from exc
    requests = [capture.CaptureRequest(name, directions) for name, directions in asked]
    handle: Capture = capture.start_capture(
        lab.plan, lab.backend, requests, run_dir, lab.journal,
        link_backends={name: lab.backends.of_link(name) for name in lab.plan.links})
    return handle


def collect(capture: Capture, plan: LabPlan, run_dir: Path, flows: list[FlowResult], *,
            start_ns: int, end_ns: int) -> tuple[list[dict[str, Any]], list[FlowResult]]:
    """Stop the capture; ``traffic[]`` rows, and each command flow with the
    contract metrics of the traffic its host sent and its time series
    (``timeseries/<id>.csv``, the run's bins from ``start_ns`` to ``end_ns``,
    CLOCK_MONOTONIC), so plots and reports show it like netlab's own flows."""
    module = importlib.import_module("netlab.capture")
    capture.stop()
    rows = module.analyse(run_dir)
    # The captures stamp packets in Unix time; the run counts on CLOCK_MONOTONIC.
    to_unix = time.time_ns() - time.monotonic_ns()
    out = []
    for entry in flows:
        if entry.kind == "command":
            addresses = [str(i.address.ip) for i in plan.hosts[entry.src].interfaces]
            entry = dataclasses.replace(entry, metrics=module.flow_metrics(rows, addresses))
            columns = module.flow_columns(module.sender_rows(rows, addresses),
                                          start_ns + to_unix, end_ns + to_unix)
            count = max((len(v) for v in columns.values()), default=0)
            write_csv(run_dir / "timeseries" / f"{entry.id}.csv", count, columns)
        out.append(entry)
    return [row.to_json() for row in rows], out
