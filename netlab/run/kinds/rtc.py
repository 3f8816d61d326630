"""``kind: rtc``: a real UDP RTP/RTCP video call (endpoints.rtc) between two hosts."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from netlab.agent.interval import RANGE_TEXT, in_range
from netlab.errors import NetlabError
from netlab.run.fmt import format_bps, ms, number
from netlab.run.kinds.base import (
    NO_METRICS,
    RECEIVER_SLACK_S,
    TWO_ENDS,
    Collected,
    Columns,
    Commands,
    FlowKind,
    Line,
)
from netlab.scenario.fields import Context, Entry, ParsedRecord
from netlab.scenario.model import Estimator, Flow, Scenario
from netlab.scenario.values import DURATION, ESTIMATOR, RATE

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from endpoints.rtc.sender_core import EstimatorMode
    from netlab.agent.lab import AgentSet
    from netlab.lab.plan import LabPlan
    from netlab.run.flows import FlowProcesses

RTC_BASE_PORT = 5004  # RFC 3551's default RTP port, one per flow above it
# The RTC sender's --probe-interval default, as a scenario would write it.
SENDER_PROBE_INTERVAL_TEXT = "2s"


@dataclass(frozen=True)
class RtcOptions:
    """An RTC flow's settings, typed (from the validated ``Flow.options``)."""

    estimator: Estimator
    initial_rate_bps: int | None = None
    min_rate_bps: int | None = None
    max_rate_bps: int | None = None
    probe_interval_s: float | None = None  # None: the sender's own default
    decision_interval_s: float | None = None  # None: the policy checkpoint's own step

    @classmethod
    def of(cls, flow: Flow) -> RtcOptions:
        o = flow.options
        estimator = o.get("estimator", Estimator("gcc"))
        assert isinstance(estimator, Estimator)
        decision = o.get("decision_interval")
        return cls(estimator, _int(o.get("initial_rate")), _int(o.get("min_rate")),
                   _int(o.get("max_rate")), flow.probe_interval_s,
                   float(decision) if isinstance(decision, int | float) else None)


def _meta_counter(path: Path, name: str) -> int | None:
    """One counter of an endpoint's meta file; None when the file or counter is missing."""
    try:
        value = json.loads(path.read_text()).get("counters", {}).get(name)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _receiver_notes(directory: Path) -> dict[str, Any]:
    """What the receiver says about its plugin (load time, calls over budget) and
    the error it stopped on, if any (``receiver_meta.json``)."""
    try:
        meta = json.loads((directory / "receiver_meta.json").read_text())
    except (OSError, ValueError):
        return {}
    counters = meta.get("counters") or {}
    notes: dict[str, Any] = {}
    if counters.get("plugin"):
        notes["plugin"] = counters["plugin"]
    if meta.get("state") == "error" and counters.get("error"):
        notes["receiver_error"] = counters["error"]
    return notes


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def estimator_args(estimator: Estimator, base_dir: Path | None) -> tuple[EstimatorMode, str]:
    """(sender --estimator, receiver --estimator) for one RTC flow (the simulator
    maps a controller by the same rule)."""
    if estimator.kind == "gcc":
        return "gcc", "none"
    if estimator.kind == "fixed":
        return "remb", f"fixed:{estimator.rate_bps}"
    if estimator.kind == "plugin":
        assert estimator.plugin is not None
        path = Path(estimator.plugin)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return "remb", f"plugin:{path}"
    raise NetlabError(
        f"estimator '{estimator}' is not available yet in this netlab version",
        where="flows[].estimator",
        fix="use gcc, fixed:<rate> or plugin:<path>; policy estimators need the agent",
    )


class RtcKind(FlowKind):
    name = "rtc"
    sender_waits_for_start = True
    sender_meta = "sender_meta.json"
    shows_target = True
    fields: ClassVar[dict[str, Entry]] = {
        **TWO_ENDS,
        "estimator": Entry(ESTIMATOR, default=Estimator("gcc"), default_text="gcc"),
        "initial_rate": Entry(RATE, description="target rate at the start"),
        "min_rate": Entry(RATE, description="lowest target rate the estimator may choose"),
        "max_rate": Entry(RATE, description="highest target rate the estimator may choose"),
        # Documentation-only default: absent, the sender keeps its own
        # (endpoints/rtc/gcc/probe_controller.py DEFAULT_PERIODIC_PROBE_INTERVAL_MS;
        # a test checks the two agree).
        "probe_interval": Entry(DURATION, default_text=SENDER_PROBE_INTERVAL_TEXT,
                                description="estimator gcc only: time between the sender's "
                                            "periodic probes at 2x the estimate; 0s: none "
                                            "(libwebrtc's camera-stream behaviour)"),
        "decision_interval": Entry(DURATION,
                                   description="estimator policy only: how often the receiver "
                                               "asks the agent for an estimate, 10ms to 1s; "
                                               "its observation window follows it; absent: "
                                               "the step the checkpoint was trained with "
                                               "(60ms for OpenNetLab's; 200ms where the "
                                               "checkpoint does not say)"),
    }

    # -- scenario ------------------------------------------------------------------

    def check(self, record: ParsedRecord, ends: tuple[str, str] | None, agent_hosts: set[str],
              ctx: Context, hosts: Collection[str]) -> None:
        estimator = record.get("estimator")
        if isinstance(estimator, Estimator) and estimator.kind == "policy" and ends is not None:
            receiver = ends[1]
            if receiver not in agent_hosts:
                ctx.problem(
                    record.nodes["estimator"],
                    record.path_of("estimator"),
                    f"an agent on the receiver {receiver!r} to serve the policy",
                    "no agent there",
                    f"add agents: {{{receiver}: {{checkpoint: ...}}}} or use estimator: gcc",
                )
        if (isinstance(estimator, Estimator) and estimator.kind != "gcc"
                and "probe_interval" in record.given):
            # Only sender-side GCC probes; with the others the target arrives as
            # REMB and the sender has no estimate of its own to probe above.
            ctx.problem(
                record.nodes["probe_interval"],
                record.path_of("probe_interval"),
                "a flow with estimator: gcc (only the sender's GCC probes)",
                f"estimator: {estimator}",
                "remove probe_interval or set estimator: gcc",
            )
        self._check_decision_interval(record, estimator, ctx)
        rates = {k: record.values[k] for k in ("min_rate", "initial_rate", "max_rate")
                 if k in record.values}
        ordered = [k for k in ("min_rate", "initial_rate", "max_rate") if k in rates]
        for lower, upper in itertools.pairwise(ordered):
            low, high = rates[lower], rates[upper]
            assert isinstance(low, int) and isinstance(high, int)
            if low > high:
                ctx.problem(
                    record.nodes[upper],
                    record.path_of(upper),
                    f"{upper} at least {lower} ({low} bit/s)",
                    f"{high} bit/s",
                )

    @staticmethod
    def _check_decision_interval(record: ParsedRecord, estimator: object, ctx: Context) -> None:
        if "decision_interval" not in record.given:
            return
        node, path = record.nodes["decision_interval"], record.path_of("decision_interval")
        if not (isinstance(estimator, Estimator) and estimator.kind == "policy"):
            # only the agent's answers come at an interval the flow chooses; the other
            # estimators keep the receiver's poll or the sender's own clock
            ctx.problem(node, path, "a flow with estimator: policy (only a policy is asked "
                        "at an interval)", f"estimator: {estimator}",
                        "remove decision_interval or set estimator: policy")
            return
        value = record.values.get("decision_interval")
        if isinstance(value, int | float) and not in_range(float(value)):
            ctx.problem(node, path, RANGE_TEXT, repr(str(getattr(node, "value", value))),
                        "the receiver polls its estimator 10ms to 1s apart; omit "
                        "decision_interval to use the checkpoint's own step")

    def policy_contract(self, record: ParsedRecord, ends: tuple[str, str]
                        ) -> tuple[str, str, str] | None:
        estimator = record.get("estimator")
        if isinstance(estimator, Estimator) and estimator.kind == "policy":
            return "estimator", ends[1], "rtc-onl4"
        return None

    # -- start ---------------------------------------------------------------------

    def commands(self, flow: Flow, index: int, plan: LabPlan, scenario: Scenario,
                 directory: Path, agents: AgentSet | None) -> Commands:
        options = RtcOptions.of(flow)
        python = [sys.executable, "-P", "-m"]  # -P: the caller's cwd never shadows our packages
        dst = str(plan.hosts[flow.dst].address)
        src = str(plan.hosts[flow.src].address)
        end = flow.stop_s if flow.stop_s is not None else scenario.duration_s
        sender_s = max(0.1, end - flow.start_s)
        receiver_s = end + RECEIVER_SLACK_S  # the runner stops it at the end anyway
        base_dir = scenario.source.parent if scenario.source else None
        port = RTC_BASE_PORT + 2 * index
        receiver_module = "endpoints.rtc.receiver_app"
        poll_interval_s: float | None = None  # None: the receiver's own
        if options.estimator.kind == "policy":
            if agents is None:
                raise NetlabError(f"flow {flow.id} asks for a policy but no agent runs",
                                  where=f"flows[{index}].estimator",
                                  fix=f"add an agent for {flow.dst} under agents:")
            receiver_module, receiver_est, timing = agents.rtc_receiver(
                flow.dst, index, options.decision_interval_s)
            poll_interval_s = timing.interval_s
            sender_est = "remb"  # the policy's estimate reaches the sender as REMB
        else:
            sender_est, receiver_est = estimator_args(options.estimator, base_dir)
        receiver = [*python, receiver_module, "--bind", f"{dst}:{port}", "--peer", src,
                    "--duration", f"{receiver_s:.3f}", "--estimator", receiver_est,
                    "--log-dir", str(directory / "receiver")]
        if poll_interval_s is not None:
            receiver += ["--poll-interval", f"{poll_interval_s:.6f}"]
        sender = [*python, "endpoints.rtc.sender_app", "--dest", f"{dst}:{port}",
                  "--duration", f"{sender_s:.3f}", "--estimator", sender_est,
                  "--seed", str(scenario.seed * 1000 + index),
                  "--log-dir", str(directory / "sender")]
        for value, flag in ((options.initial_rate_bps, "--start-rate"),
                            (options.min_rate_bps, "--min-rate"),
                            (options.max_rate_bps, "--max-rate")):
            if value is not None:
                sender += [flag, str(value)]
        if options.probe_interval_s is not None:  # validated: only with estimator gcc
            sender += ["--probe-interval", str(options.probe_interval_s)]
        return Commands(receiver, sender)

    # -- collect -------------------------------------------------------------------

    def control(self, flow: Flow) -> dict[str, str]:
        return {"estimator": str(RtcOptions.of(flow).estimator)}

    def collect(self, fp: FlowProcesses, start_ns: int, end_ns: int,
                capacity: npt.NDArray[np.float64] | None) -> Collected:
        import numpy as np

        from endpoints.metrics.series import hold_values, rate_series
        from endpoints.metrics.summary import rtc_flow_metrics
        from endpoints.rtc import logs as rtc_logs
        from netlab.run.collect import BIN_NS, active_interval, read_log

        received = read_log(rtc_logs.RECEIVER_PACKETS, fp.receiver_dir)
        sent = read_log(rtc_logs.SENDER_PACKETS, fp.sender_dir)
        rate_log = read_log(rtc_logs.SENDER_RATE, fp.sender_dir)
        estimates = read_log(rtc_logs.RECEIVER_ESTIMATES, fp.receiver_dir)
        if received is None or received.size == 0:
            return Collected(dict(NO_METRICS, note="no packet arrived"), {}, {})
        targets = (rate_log["time_ns"], rate_log["target_bps"]) if rate_log is not None else None
        bin_times = start_ns + BIN_NS * np.arange(len(capacity) if capacity is not None else 0)
        active_start_ns, active_end_ns = active_interval(fp.flow, start_ns, end_ns,
                                                         fp.started_ns)
        summary = rtc_flow_metrics(
            received, sent, start_ns=active_start_ns, end_ns=active_end_ns, estimates=targets,
            capacity=(bin_times, capacity) if capacity is not None else None)
        rates = rate_series(received["arrival_ns"], received["size"], bin_ns=BIN_NS,
                            start_ns=start_ns, end_ns=end_ns)
        bins = rates.bin_start_ns
        delays: list[float | None] = []
        stamped = received["send_ns"] >= 0
        owd_ms = (received["arrival_ns"] - received["send_ns"]) / 1e6
        index = (received["arrival_ns"] - start_ns) // BIN_NS
        for i in range(len(bins)):
            chosen = owd_ms[(index == i) & stamped]
            delays.append(float(np.median(chosen)) if chosen.size else None)
        columns: Columns = {
            "recv_rate_bps": list(rates.rate_bps), "delay_ms": delays,
            "target_bps": (list(hold_values(rate_log["time_ns"], rate_log["target_bps"], bins))
                           if rate_log is not None and rate_log.size else []),
            "estimate_bps": (list(hold_values(estimates["time_ns"], estimates["estimate_bps"],
                                              bins))
                             if estimates is not None and estimates.size else []),
        }
        metrics: dict[str, Any] = summary.metrics
        # datagrams from anyone but the peer, dropped (endpoints.rtc receiver/sender meta)
        metrics["foreign_at_receiver"] = _meta_counter(fp.receiver_dir / "receiver_meta.json",
                                                       "foreign_packets")
        metrics["foreign_at_sender"] = _meta_counter(fp.sender_dir / "sender_meta.json",
                                                     "foreign_datagrams")
        metrics.update(_receiver_notes(fp.receiver_dir))
        return Collected(metrics, summary.scores, columns)

    # -- live ----------------------------------------------------------------------

    def live_fields(self, rx: Line, tx: Line) -> list[tuple[str, str]]:
        fields = super().live_fields(rx, tx)
        fields.append(("target", format_bps(number(tx.get("target_bps",
                                                          tx.get("estimate_bps"))))))
        fields.append(("rtt", ms(number(tx.get("rtt_ms")))))
        estimate = number(rx.get("estimate_bps"))
        if estimate is not None:  # only with a receiver-side estimator (REMB)
            fields.append(("estimate", format_bps(estimate)))
        return fields


KIND = RtcKind()
