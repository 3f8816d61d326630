"""``kind: probe``: the link probe as a flow. Between its start and stop it
measures its path (an idle echo RTT, then a TCP bulk transfer;
:mod:`netlab.probes.links`); a one-hop path's figures also judge that link
direction's fidelity."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from netlab.run.kinds.base import TWO_ENDS, FlowKind, RunningFlow
from netlab.scenario.fields import Entry
from netlab.scenario.model import Flow, Scenario
from netlab.scenario.values import POSITIVE_DURATION, SIZE

if TYPE_CHECKING:
    from netlab.agent.lab import AgentSet
    from netlab.lab.plan import LabPlan
    from netlab.probes.links import ProbeMeasurement
    from netlab.run.flows import Spawner
    from netlab.run.results import FlowResult

PROBE_BASE_PORT = 5801  # the bulk transfer's; echo on PROBE_ECHO_BASE_PORT + index
PROBE_ECHO_BASE_PORT = 7700
DEFAULT_INTERVAL_S = 0.005


@dataclass
class ProbeRun(RunningFlow):
    """The probe of one flow, in a thread of the run's process."""

    flow: Flow
    directory: Path
    plan: LabPlan
    seconds: float
    index: int
    interval_s: float
    size: int | None
    started: bool = False
    stopped: bool = False
    measurement: ProbeMeasurement | None = None
    error: str | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self, spawn: Spawner) -> None:
        self.started = True
        self._thread = threading.Thread(target=self._measure, name=f"probe-{self.flow.id}",
                                        daemon=True)
        self._thread.start()

    def _measure(self) -> None:
        from netlab.probes.links import probe_path

        try:
            self.measurement = probe_path(
                self.plan, self.flow.src, self.flow.dst, self.seconds,
                port=PROBE_BASE_PORT + self.index,
                echo_port=PROBE_ECHO_BASE_PORT + self.index, interval_s=self.interval_s,
                size=self.size)
        except OSError as exc:
            self.error = str(exc)

    def stop(self) -> None:
        self.stopped = True
        if self._thread is not None:
            self._thread.join(timeout=self.seconds + 5.0)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


class ProbeKind(FlowKind):
    name = "probe"
    fields: ClassVar[dict[str, Entry]] = {
        **TWO_ENDS,
        "interval": Entry(POSITIVE_DURATION, default_text="5ms",
                          description="time between the echo requests that measure the idle RTT"),
        "size": Entry(SIZE, description="IP bytes of each echo request (default: 40B)"),
    }

    def running(self, flow: Flow, index: int, plan: LabPlan, scenario: Scenario,
                directory: Path, agents: AgentSet | None) -> RunningFlow:
        end = flow.stop_s if flow.stop_s is not None else scenario.duration_s
        interval = flow.options.get("interval")
        size = flow.options.get("size")
        run = ProbeRun(flow, directory, plan, max(1.0, end - flow.start_s), index,
                       float(interval) if isinstance(interval, int | float) else
                       DEFAULT_INTERVAL_S, int(size) if isinstance(size, int) else None)
        return run

    def control(self, flow: Flow) -> dict[str, str]:
        return {"cc": "cubic"}

    def results(self, rf: RunningFlow, plan: LabPlan, run_dir: Path, *, start_ns: int,
                end_ns: int, base_dir: Path | None) -> list[FlowResult]:
        from netlab.probes.links import probe_flow_results
        from netlab.run.results import FlowResult

        assert isinstance(rf, ProbeRun)
        flow = rf.flow
        if rf.measurement is None:
            note = rf.error or "the probe did not finish"
            return [FlowResult(flow.id, flow.kind, flow.src, flow.dst, self.control(flow),
                               {"recv_rate_bps": None, "delay_p50_ms": None,
                                "delay_p95_ms": None, "delay_p99_ms": None, "loss": None,
                                "note": note}, start_s=flow.start_s, stop_s=flow.stop_s)]
        entry = probe_flow_results([rf.measurement])[0]
        return [FlowResult(flow.id, flow.kind, flow.src, flow.dst, entry.control, entry.metrics,
                           start_s=flow.start_s, stop_s=flow.stop_s)]


KIND = ProbeKind()
