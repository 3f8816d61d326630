"""What a flow kind declares, once: its scenario fields, its processes, its
results and its live line (aiortc's ``codecs/`` pattern: one base, one
module per variant, one dispatch in :mod:`netlab.run.kinds`).

Nothing here knows a particular kind; the pipeline asks the flow's kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from netlab.errors import NetlabError
from netlab.readiness import DEFAULT_READY_TIMEOUT_S, Waiting
from netlab.run.fmt import format_bps, ms, number, percent
from netlab.scenario.fields import Context, Entry, ParsedRecord
from netlab.scenario.model import Flow, Scenario
from netlab.scenario.values import HOST_NAME

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from netlab.agent.lab import AgentSet
    from netlab.lab.plan import LabPlan
    from netlab.run.flows import FlowProcesses, Spawner
    from netlab.run.live import LiveFlow
    from netlab.run.results import FlowResult

RECEIVER_HEAD_START_S = 0.3  # receivers bind before any sender starts (Vagrant runs)
#: A receiver's own --duration counts from when it is ready; the run's clock
#: starts once the slowest receiver is ready, so each gets that wait on top.
RECEIVER_SLACK_S = DEFAULT_READY_TIMEOUT_S + 1.0

TWO_ENDS: dict[str, Entry] = {
    "from": Entry(HOST_NAME, required=True, description="sending host"),
    "to": Entry(HOST_NAME, required=True, description="receiving host"),
}

Columns = dict[str, list[float | None]]
Line = dict[str, Any]  # one live.jsonl line, as the endpoint wrote it


@dataclass(frozen=True)
class Commands:
    """The receiver's and the sender's command lines of a two-ended flow."""

    receiver: list[str]
    sender: list[str]


class RunningFlow(ABC):
    """One flow while it runs: prepared with the run, started at its ``start``,
    stopped at its ``stop`` or the run's end."""

    flow: Flow
    directory: Path
    started: bool = False
    stopped: bool = False

    @property
    def end_s(self) -> float | None:
        return self.flow.stop_s

    def prepare(self, spawn: Spawner) -> None:
        """What must run before any flow starts (receivers)."""
        return None

    def waiting(self) -> list[Waiting]:
        """What the run waits for before its time zero (:mod:`netlab.readiness`):
        the receiving side, and a sender started early to wait for its start."""
        return []

    def release(self, zero_ns: int) -> None:
        """The run's time zero is ``zero_ns`` (CLOCK_MONOTONIC): a process that waits
        for its start gets ``zero_ns + start``.  Called once, before the zero."""
        return None

    @abstractmethod
    def start(self, spawn: Spawner) -> None:
        """Start sending; called once, at the flow's ``start``."""

    @abstractmethod
    def stop(self) -> None:
        """Stop everything of the flow and reap it; safe to call twice."""

    def request_stop(self) -> None:
        """Stop at its ``stop`` mid-run: a flow whose processes may take long to
        end (a user's program) asks them here and is reaped by ``stop``."""
        self.stop()

    def poll(self) -> None:
        """Note what ended by itself (called every step of the run)."""
        return None

    @property
    def running(self) -> bool:
        """Something of the flow still runs (a process or a thread)."""
        return self.started and not self.stopped


@dataclass(frozen=True)
class Collected:
    """One flow's figures: the contract metrics (and kind-specific extras
    beside them), its scores, and its 100 ms time-series columns."""

    metrics: dict[str, Any]
    scores: dict[str, Any]
    columns: Columns


NO_METRICS: dict[str, Any] = {"recv_rate_bps": 0.0, "delay_p50_ms": None, "delay_p95_ms": None,
                              "delay_p99_ms": None, "loss": None}


class FlowKind(ABC):
    """One kind of flow. Subclasses set ``name`` and ``fields`` and override
    what differs; the defaults are a generic two-ended flow's."""

    name: ClassVar[str]
    fields: ClassVar[Mapping[str, Entry]]
    two_ended: ClassVar[bool] = True  # from/to (TWO_ENDS); False: one host (a command)
    shows_target: ClassVar[bool] = False  # the live summary's "mean target" column
    #: The sender takes ``--wait-start`` (:mod:`endpoints.ready`): it is started with
    #: the receivers and starts sending at its time on the run's clock, not after
    #: its interpreter's start-up (hundreds of ms, more on a loaded machine).
    sender_waits_for_start: ClassVar[bool] = False
    #: The sender's metadata file (in its log folder), with ``start_at_ns`` (the
    #: instant it was given) and ``started_ns`` (when it really started).
    sender_meta: ClassVar[str | None] = None


    # -- scenario ------------------------------------------------------------------

    def check(self, record: ParsedRecord, ends: tuple[str, str] | None, agent_hosts: set[str],
              ctx: Context, hosts: Collection[str]) -> None:
        """Rules spanning this kind's fields and the rest of the scenario."""
        return None

    def options(self, record: ParsedRecord) -> dict[str, object]:
        """``Flow.options``: this kind's fields that the file gave or that have a default."""
        return {key: record.values[key] for key in self.fields if key in record.values
                and key not in TWO_ENDS and key != "host"}

    def policy_contract(self, record: ParsedRecord, ends: tuple[str, str]
                        ) -> tuple[str, str, str] | None:
        """(field, agent host, contract) when this flow asks an agent for a policy."""
        return None

    # -- start ---------------------------------------------------------------------

    def commands(self, flow: Flow, index: int, plan: LabPlan, scenario: Scenario,
                 directory: Path, agents: AgentSet | None) -> Commands:
        """The command lines of the flow's ``index``-th process pair."""
        raise NetlabError(f"flow kind '{flow.kind}' has no endpoint processes",
                          where=f"flows[{index}].kind",
                          fix="use rtc or tcp (probe runs built in)")

    def running(self, flow: Flow, index: int, plan: LabPlan, scenario: Scenario,
                directory: Path, agents: AgentSet | None) -> RunningFlow:
        """The flow, ready to run: by default a receiver and a sender process."""
        from netlab.run.flows import FlowProcesses

        commands = self.commands(flow, index, plan, scenario, directory, agents)
        for role in ("sender", "receiver"):
            (directory / role).mkdir(parents=True, exist_ok=True)
        if self.sender_waits_for_start:
            return FlowProcesses(flow, directory, commands.receiver,
                                 [*commands.sender, "--wait-start"], gated=True)
        return FlowProcesses(flow, directory, commands.receiver, commands.sender)


    # -- collect -------------------------------------------------------------------

    def results(self, rf: RunningFlow, plan: LabPlan, run_dir: Path, *, start_ns: int,
                end_ns: int, base_dir: Path | None) -> list[FlowResult]:
        """The flow's ``flows[]`` entries (time series written beside them)."""
        from netlab.run.collect import pair_result
        from netlab.run.flows import FlowProcesses

        assert isinstance(rf, FlowProcesses)
        return [pair_result(self, rf, plan, run_dir, start_ns=start_ns, end_ns=end_ns,
                            base_dir=base_dir)]

    @abstractmethod
    def control(self, flow: Flow) -> dict[str, str]:
        """What set the flow's rate, as ``flows[]`` names it (estimator, cc...)."""

    def label(self, flow: Flow) -> str:
        """The controller in one word, for the live view."""
        return next(iter(self.control(flow).values()), "")

    def collect(self, fp: FlowProcesses, start_ns: int, end_ns: int,
                capacity: npt.NDArray[np.float64] | None) -> Collected:
        """Metrics, scores and time series from the flow's logs."""
        return Collected(dict(NO_METRICS, note="this kind writes no logs"), {}, {})

    # -- live ----------------------------------------------------------------------

    def live_flow(self, rf: RunningFlow) -> LiveFlow | None:
        """What the live view tails for this flow; None: the view leaves it out."""
        from netlab.run.flows import FlowProcesses
        from netlab.run.live import LiveFlow

        if not isinstance(rf, FlowProcesses):
            return None
        f = rf.flow
        return LiveFlow(f.id, f.kind, f.src, f.dst, f"{f.kind} {self.label(f)}",
                        rf.receiver_dir / "live.jsonl", start_s=f.start_s, stop_s=f.stop_s,
                        extra_paths=(rf.sender_dir / "live.jsonl",))

    def live_fields(self, rx: Line, tx: Line) -> list[tuple[str, str]]:
        """(name, value) pairs of the flow's panel and status line."""
        return [("recv", format_bps(number(rx.get("rate_bps")))),
                ("delay", ms(number(rx.get("owd_ms")))),
                ("loss", percent(number(rx.get("loss", tx.get("loss")))))]

    def live_cells(self, values: dict[str, str]) -> list[str]:
        """The four cells of the compact table: recv, delay, loss, target."""
        return [values["recv"], values["delay"], values["loss"], values.get("target", "–")]

    def live_lost(self, rx: Line, tx: Line) -> str:
        """What the summary's loss column shows."""
        return percent(number(rx.get("loss", tx.get("loss"))))
