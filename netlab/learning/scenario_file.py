"""A user's own scenario file as an evaluation scenario: run as written, with
the controller under test put on its RTC flows.

The controller replaces the estimator of the flows that say
``estimator: policy``, or of every RTC flow when none does; everything else
(hosts, links, traces, competing flows, the duration and seed) runs as the
file says. A policy is served by an agent on each controlled flow's
receiver: the file's own agent there keeps its deadline and fallback and
gets the policy's checkpoint; a host without one gets an agent with the
evaluation's deadline. A rule-based baseline (GCC) drops agents that then
serve nothing. Each lab gets its own name and address range, so K copies
of one file can run at once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.errors import NetlabError
from netlab.scenario import load_scenario
from netlab.scenario.model import Agent, Estimator, Flow, Scenario

#: The ``estimator`` option of an RTC flow (``netlab.run.kinds.rtc``).
ESTIMATOR_OPTION = "estimator"
#: GCC's own probing knob, meaningless once a policy sets the rate (the
#: scenario validator refuses it with any other estimator).
GCC_ONLY_OPTIONS = ("probe_interval",)


@dataclass(frozen=True)
class ScenarioFile:
    """A scenario file to evaluate on. ``files`` maps paths as the scenario
    writes them (traces, agent checkpoints) to local copies, for a worker that
    received the file and what it names rather than the head's paths."""

    path: str
    name: str
    duration_s: float
    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name

    @classmethod
    def load(cls, path: Path) -> ScenarioFile:
        """Validate ``path`` as a scenario with an RTC flow to control."""
        scenario = load_scenario(path)
        controlled_flows(scenario, str(path))
        return cls(str(path.resolve()), scenario.name, scenario.duration_s)

    def as_dict(self) -> dict[str, Any]:
        return {"scenario_file": self.path, "name": self.name, "duration_s": self.duration_s,
                "files": dict(self.files)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioFile:
        return cls(str(data["scenario_file"]), str(data["name"]), float(data["duration_s"]),
                   {str(k): str(v) for k, v in (data.get("files") or {}).items()})

    def referenced(self) -> list[str]:
        """The files the scenario names as written (traces, agent checkpoints) that
        exist beside it: what a worker without the head's disk needs."""
        return list(_referenced(self.path, Path(self.path).stat().st_mtime_ns))


@functools.lru_cache(maxsize=256)
def _referenced(path: str, mtime_ns: int) -> tuple[str, ...]:
    """:meth:`ScenarioFile.referenced`, once per version of the file (validating
    a scenario loads its traces)."""
    scenario = load_scenario(Path(path))
    base = Path(path).parent
    written = [d.trace for link in scenario.links for d in (link.up, link.down)
               if d.trace is not None]
    written += [a.checkpoint for a in scenario.agents if a.checkpoint is not None]
    return tuple(w for w in dict.fromkeys(written) if (base / Path(w).expanduser()).is_file())


def controlled_flows(scenario: Scenario, where: str) -> list[Flow]:
    """The RTC flows a controller drives: those asking for a policy, else all."""
    rtc = [f for f in scenario.flows if f.kind == "rtc"]
    if not rtc:
        raise NetlabError(f"scenario {scenario.name!r} has no RTC flow to put a controller on",
                          where=where,
                          fix="add a flow with kind: rtc (estimator: policy marks the flows "
                              "the controller drives)")
    asking = [f for f in rtc if _estimator(f).kind == "policy"]
    return asking or rtc


def _estimator(flow: Flow) -> Estimator:
    value = flow.options.get(ESTIMATOR_OPTION, Estimator("gcc"))
    assert isinstance(value, Estimator)
    return value


def _controller(name: str, where: str) -> Estimator:
    if name == "policy":
        return Estimator("policy")
    if name == "gcc":
        return Estimator("gcc")
    raise NetlabError(f"no controller {name!r} for the RTC flows", where=where,
                      fix="use a policy checkpoint or the gcc baseline")


def _serves_tcp_policy(scenario: Scenario, host: str) -> bool:
    return any(f.kind == "tcp" and f.src == host and f.options.get("rate_control") == "policy"
               for f in scenario.flows)


def with_controller(source: ScenarioFile, *, lab: str, estimator: str,
                    checkpoint: str | None, deadline_s: float, fallback: str = "keep"
                    ) -> tuple[Scenario, list[str]]:
    """The scenario of ``source`` as lab ``lab`` with ``estimator`` (``policy``
    served from ``checkpoint``, or a baseline such as ``gcc``) on its controlled
    flows; returns it and the ids of those flows."""
    scenario = load_scenario(Path(source.path), files=source.files)
    targets = {f.id for f in controlled_flows(scenario, source.path)}
    flows: list[Flow] = []
    for flow in scenario.flows:
        if flow.id in targets:
            options = dict(flow.options)
            options[ESTIMATOR_OPTION] = _controller(estimator, source.path)
            if estimator != "gcc":
                for key in GCC_ONLY_OPTIONS:
                    options.pop(key, None)
            flow = dataclasses.replace(flow, options=options)
        flows.append(flow)
    receivers = {f.dst for f in flows if f.id in targets}
    agents: dict[str, Agent] = {a.host: a for a in scenario.agents}
    if estimator == "policy":
        if checkpoint is None:
            raise NetlabError("a policy controller needs a checkpoint", where=source.path,
                              fix="give --policy NAME=CHECKPOINT")
        for host in sorted(receivers):
            if _serves_tcp_policy(scenario, host):
                raise NetlabError(
                    f"the agent on {host!r} serves a TCP policy; the RTC policy under test "
                    "would need it too", where=f"{source.path}: agents.{host}",
                    fix="receive the RTC flows on a host whose agent serves no TCP sender")
            own = agents.get(host)
            agents[host] = (dataclasses.replace(own, checkpoint=checkpoint) if own is not None
                            else Agent(host, checkpoint, deadline_s, fallback))
    else:
        still_needed = {f.dst for f in flows if f.kind == "rtc"
                        and _estimator(f).kind == "policy"}
        still_needed |= {f.src for f in flows if f.kind == "tcp"
                         and f.options.get("rate_control") == "policy"}
        agents = {h: a for h, a in agents.items() if h in still_needed}
    controlled = dataclasses.replace(scenario, name=lab, flows=tuple(flows),
                                     agents=tuple(agents.values()), subnet=None)
    return controlled, [f.id for f in flows if f.id in targets]
