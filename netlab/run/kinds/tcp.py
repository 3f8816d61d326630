"""``kind: tcp``: a kernel TCP flow (endpoints.tcp), bulk or application-limited."""

from __future__ import annotations

import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from netlab.errors import NetlabError
from netlab.run.fmt import count, format_bps, ms, number
from netlab.run.kinds.base import (
    NO_METRICS,
    RECEIVER_SLACK_S,
    TWO_ENDS,
    Collected,
    Commands,
    FlowKind,
    Line,
)
from netlab.scenario.fields import Choice, Context, Entry, ParsedRecord
from netlab.scenario.model import Flow, Scenario
from netlab.scenario.values import CC_NAME, RATE

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from netlab.agent.lab import AgentSet
    from netlab.lab.plan import LabPlan
    from netlab.run.flows import FlowProcesses

TCP_BASE_PORT = 5201
RATE_CONTROLS = ("kernel", "policy")


@dataclass(frozen=True)
class TcpOptions:
    """A TCP flow's settings, typed (from the validated ``Flow.options``)."""

    cc: str = "cubic"
    rate_bps: int | None = None  # None: bulk
    rate_control: str = "kernel"

    @classmethod
    def of(cls, flow: Flow) -> TcpOptions:
        o = flow.options
        rate = o.get("rate")
        return cls(str(o.get("cc", "cubic")), int(rate) if isinstance(rate, int | float) else None,
                   str(o.get("rate_control", "kernel")))


class TcpKind(FlowKind):
    name = "tcp"
    sender_waits_for_start = True
    sender_meta = "sender.json"  # endpoints.tcp.logs.SENDER_META_FILE
    fields: ClassVar[dict[str, Entry]] = {
        **TWO_ENDS,
        "cc": Entry(CC_NAME, default="cubic", default_text="cubic",
                    description="kernel congestion control (checked by preflight)"),
        "rate": Entry(RATE, description="application-limited sending rate; default: bulk"),
        "rate_control": Entry(Choice(RATE_CONTROLS), default="kernel", default_text="kernel",
                              description="who sets the pacing rate: the kernel's congestion "
                                          "control alone, or a policy served by the sender's "
                                          "agent (contract tcp-mi5)"),
    }

    # -- scenario ------------------------------------------------------------------

    def check(self, record: ParsedRecord, ends: tuple[str, str] | None, agent_hosts: set[str],
              ctx: Context, hosts: Collection[str]) -> None:
        if record.get("rate_control") == "policy" and ends is not None:
            sender = ends[0]
            if sender not in agent_hosts:
                ctx.problem(
                    record.nodes["rate_control"],
                    record.path_of("rate_control"),
                    f"an agent on the sender {sender!r} to serve the policy",
                    "no agent there",
                    f"add agents: {{{sender}: {{checkpoint: ...}}}} or use rate_control: "
                    "kernel",
                )

    def policy_contract(self, record: ParsedRecord, ends: tuple[str, str]
                        ) -> tuple[str, str, str] | None:
        if record.get("rate_control") == "policy":
            return "rate_control", ends[0], "tcp-mi5"
        return None

    # -- start ---------------------------------------------------------------------

    def commands(self, flow: Flow, index: int, plan: LabPlan, scenario: Scenario,
                 directory: Path, agents: AgentSet | None) -> Commands:
        options = TcpOptions.of(flow)
        python = [sys.executable, "-P", "-m"]  # -P: the caller's cwd never shadows our packages
        dst = str(plan.hosts[flow.dst].address)
        end = flow.stop_s if flow.stop_s is not None else scenario.duration_s
        sender_s = max(0.1, end - flow.start_s)
        receiver_s = end + RECEIVER_SLACK_S  # the runner stops it at the end anyway
        port = TCP_BASE_PORT + index
        mode = f"rate:{options.rate_bps}bit" if options.rate_bps else "bulk"
        receiver = [*python, "endpoints.tcp.receiver_app", "--bind", f"{dst}:{port}",
                    "--duration", f"{receiver_s:.3f}", "--log-dir", str(directory / "receiver")]
        sender = [*python, "endpoints.tcp.sender_app", "--dest", f"{dst}:{port}",
                  "--cc", options.cc, "--mode", mode, "--duration", f"{sender_s:.3f}",
                  "--log-dir", str(directory / "sender")]
        if options.rate_control == "policy":
            if agents is None:
                raise NetlabError(f"flow {flow.id} asks for a policy but no agent runs",
                                  where=f"flows[{index}].rate_control",
                                  fix=f"add an agent for {flow.src} under agents:")
            sender += ["--policy", agents.tcp_sender(flow.src, index)]
        return Commands(receiver, sender)

    # -- collect -------------------------------------------------------------------

    def control(self, flow: Flow) -> dict[str, str]:
        options = TcpOptions.of(flow)
        return {"cc": options.cc, "rate_control": options.rate_control}

    def collect(self, fp: FlowProcesses, start_ns: int, end_ns: int,
                capacity: npt.NDArray[np.float64] | None) -> Collected:
        from endpoints.metrics.series import rebin
        from endpoints.metrics.summary import tcp_flow_metrics
        from endpoints.tcp import logs as tcp_logs
        from netlab.run.collect import BIN_NS

        try:
            info: npt.NDArray[Any] | None = tcp_logs.read_tcp_info_log(fp.sender_dir)
        except FileNotFoundError:
            info = None
        try:
            bins = tcp_logs.read_recv_bins(fp.receiver_dir)
        except FileNotFoundError:
            return Collected(dict(NO_METRICS, note="the receiver wrote no log"), {}, {})
        summary = tcp_flow_metrics(info, bins)
        rates = rebin(bins["bin_start_ns"], bins["bytes"], bin_ns=BIN_NS, start_ns=start_ns,
                      end_ns=end_ns)
        metrics: dict[str, Any] = summary.metrics
        return Collected(metrics, summary.scores, {"recv_rate_bps": list(rates.rate_bps)})

    # -- live ----------------------------------------------------------------------

    def live_fields(self, rx: Line, tx: Line) -> list[tuple[str, str]]:
        return [("recv", format_bps(number(rx.get("rate_bps")))),
                ("srtt", ms(number(tx.get("srtt_ms")))),
                ("cwnd", count(number(tx.get("cwnd")))),
                ("retrans", count(number(tx.get("retrans"))))]

    def live_cells(self, values: dict[str, str]) -> list[str]:
        return [values["recv"], values["srtt"], f"{values['retrans']} retr",
                f"cwnd {values['cwnd']}"]

    def live_lost(self, rx: Line, tx: Line) -> str:
        return f"{count(number(tx.get('retrans')))} retr"


KIND = TcpKind()
