"""Parsed scenario records → a typed :class:`Scenario`, after the cross-field checks.

The declarative pass (:mod:`netlab.scenario.definition`) checks each value on
its own; this module checks what spans fields — hosts that links and flows
name, unique link names and flow ids, self-links, flows between hosts no chain
of links joins, times within the duration, jitter ≤ delay, policies without an
agent — and builds the typed objects only when no problem was found anywhere.
Checks that would only echo an earlier problem (an unknown host making a flow
look unroutable) are skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from yaml.nodes import Node

from labcore.units import format_duration
from netlab.run.kinds import KINDS
from netlab.scenario import definition
from netlab.scenario.fields import (
    Context,
    ParsedList,
    ParsedMap,
    ParsedRecord,
    child_path,
    closest,
    index_path,
)
from netlab.scenario.model import Agent, Direction, Flow, Host, Link, Scenario
from shaping.spec import LinkShape, QueueLimit

# The lab gives each link a /30 (two usable addresses and the network and
# broadcast ones), see netlab.lab.plan.LINK_PREFIX.
ADDRESSES_PER_LINK = 4


@dataclass
class _Hosts:
    """Hosts as written; ``complete`` is False when some host entry was invalid."""

    hosts: dict[str, Host] = field(default_factory=dict)
    complete: bool = True


def build_scenario(root: Node, ctx: Context, source: Path | None) -> Scenario | None:
    """Check everything; return the scenario when the log stayed empty."""
    parsed = definition.SCENARIO.parse(root, "", ctx)
    if not isinstance(parsed, ParsedRecord):
        return None
    checker = _Checker(ctx, parsed)
    scenario = checker.run(source)
    return None if ctx.log else scenario


class _Checker:
    def __init__(self, ctx: Context, record: ParsedRecord) -> None:
        self.ctx = ctx
        self.record = record
        self.hosts = self._hosts(record.get("hosts"))
        self.duration = record.number("duration")
        # Adjacency for routability; None once any link's endpoints are unusable.
        self.adjacency: dict[str, set[str]] | None = (
            {name: set() for name in self.hosts.hosts} if self.hosts.complete else None
        )

    def run(self, source: Path | None) -> Scenario | None:
        links = self._links(self.record.get("links"))
        agents = self._agents(self.record.get("agents"))
        flows = self._flows(self.record.get("flows"), {agent.host for agent in agents})
        subnet = self._subnet(len(links))
        name, seed = self.record.text("name"), self.record.get("seed")
        if name is None or self.duration is None or not isinstance(seed, int):
            return None
        return Scenario(
            name=name,
            duration_s=self.duration,
            seed=seed,
            hosts=tuple(self.hosts.hosts.values()),
            links=tuple(links),
            flows=tuple(flows),
            agents=tuple(agents),
            subnet=subnet,
            source=source,
        )

    # ------------------------------------------------------------------ hosts

    def _hosts(self, value: object) -> _Hosts:
        result = _Hosts()
        if isinstance(value, ParsedList):
            first: dict[str, int] = {}
            for index, node, name in value.items:
                if not isinstance(name, str):
                    result.complete = False
                    continue
                if name in first:
                    self.ctx.problem(
                        node,
                        index_path("hosts", index),
                        "unique host names",
                        f"{name!r} again (also hosts[{first[name]}])",
                        "remove the repeated name",
                    )
                    continue
                first[name] = index
                result.hosts[name] = Host(name)
        elif isinstance(value, ParsedMap):
            for name, _, _, options in value.entries:
                sysctls: dict[str, str] = {}
                user: str | None = None
                if isinstance(options, ParsedRecord):
                    sysctl_map = options.get("sysctls")
                    if isinstance(sysctl_map, ParsedMap):
                        sysctls = {k: v for k, _, _, v in sysctl_map.entries if isinstance(v, str)}
                    user = options.text("user")
                result.hosts[name] = Host(name, sysctls, user)
            result.complete = len(value.entries) == len(value.node.value)
        else:
            result.complete = False
        return result

    def _host_ref(self, node: Node, path: str, name: str) -> bool:
        """Is ``name`` a host?  Reports it when not (and hosts are known)."""
        if name in self.hosts.hosts:
            return True
        if self.hosts.complete:
            known = list(self.hosts.hosts)
            near = closest(name, known)
            self.ctx.problem(
                node,
                path,
                f"one of the scenario's hosts ({', '.join(known)})",
                f"unknown host {name!r}",
                f"did you mean {near!r}?" if near else f"add {name!r} under hosts",
            )
        return False

    # ------------------------------------------------------------------ links

    def _links(self, value: object) -> list[Link]:
        links: list[Link] = []
        if not isinstance(value, ParsedList):
            if value is not None:
                self.adjacency = None
            return links
        names: dict[str, str] = {}
        pairs: dict[frozenset[str], str] = {}
        for index, node, record in value.items:
            path = index_path("links", index)
            if not isinstance(record, ParsedRecord):
                self.adjacency = None
                continue
            ends = self._endpoints(record)
            if ends is None:
                self.adjacency = None
                continue
            a, b = ends
            if self.adjacency is not None:
                self.adjacency[a].add(b)
                self.adjacency[b].add(a)
            explicit = record.text("name")
            name = explicit or f"{a}-{b}"
            if "name" in record.given and explicit is None:
                continue  # invalid name, already reported
            name_node = record.nodes.get("name", node)
            if name in names:
                self.ctx.problem(
                    name_node,
                    child_path(path, "name"),
                    "a unique link name",
                    f"{name!r} again (also {names[name]})",
                    None if explicit else "two links between the same hosts need explicit names",
                )
                continue
            pair = frozenset(ends)
            if pair in pairs and explicit is None:
                self.ctx.problem(
                    node,
                    child_path(path, "name"),
                    f"an explicit name for a second link between {a} and {b}",
                    f"no name (also linked by {pairs[pair]})",
                    "give each parallel link a name",
                )
                continue
            names[name] = path
            pairs.setdefault(pair, path)
            up = self._direction(record, "up")
            down = self._direction(record, "down")
            if up is not None and down is not None:
                capture = record.get("capture")
                links.append(Link(name=name, a=a, b=b, up=up, down=down,
                                  capture=capture if isinstance(capture, tuple) else ()))
        return links

    def _endpoints(self, record: ParsedRecord) -> tuple[str, str] | None:
        value = record.get("endpoints")
        if not isinstance(value, ParsedList):
            return None
        path = record.path_of("endpoints")
        ends: list[str] = []
        for index, node, name in value.items:
            if isinstance(name, str) and self._host_ref(node, index_path(path, index), name):
                ends.append(name)
        if len(ends) != 2:
            return None
        if ends[0] == ends[1]:
            self.ctx.problem(
                value.node,
                path,
                "two different hosts",
                f"a link from {ends[0]!r} to itself",
                "a host reaches itself without a link; remove this link",
            )
            return None
        return ends[0], ends[1]

    def _direction(self, link: ParsedRecord, key: str) -> Direction | None:
        """Merge link-level keys with the direction's own (which win) and check the result."""
        own = link.record(key)
        if key in link.given and own is None:
            return None  # the direction itself was invalid, already reported
        own = own or ParsedRecord(link.node, link.path_of(key))
        for level in (own, link):
            if "rate" in level.given and "trace" in level.given:
                self.ctx.problem(
                    level.nodes["trace"],
                    level.path_of("trace"),
                    f"either rate or trace in {level.path}",
                    "both",
                    "a trace sets the rate over time; remove one of them",
                )
                return None
        values: dict[str, object] = {}
        source: dict[str, ParsedRecord] = {}
        for name, entry in definition.SHAPE_ENTRIES.items():
            for level in (own, link):
                if name in level.given:
                    if name not in level.values:
                        return None  # invalid value, already reported
                    values[name], source[name] = level.values[name], level
                    break
            else:
                if entry.has_default:
                    values[name] = entry.default
        if "trace" in own.given:
            values.pop("rate", None)  # the direction's trace replaces a link-level rate
        if "rate" in own.given:
            values.pop("trace", None)
        delay, jitter = values["delay"], values["jitter"]
        assert isinstance(delay, float) and isinstance(jitter, float)
        if jitter > delay:
            where = source["jitter"]
            self.ctx.problem(
                where.nodes["jitter"],
                where.path_of("jitter"),
                f"a jitter no larger than the delay ({format_duration(delay)})",
                format_duration(jitter),
                "netem cannot delay a packet by less than zero; raise delay or lower jitter",
            )
            return None
        rate, loss, queue, trace = (values.get(k) for k in ("rate", "loss", "queue", "trace"))
        assert rate is None or isinstance(rate, int)
        assert isinstance(loss, float)
        assert queue is None or isinstance(queue, QueueLimit)
        assert trace is None or isinstance(trace, str)
        shape = LinkShape(rate_bps=rate, delay_s=delay, jitter_s=jitter, loss=loss, queue=queue)
        end = values.get("trace_end")
        return Direction(shape=shape, trace=trace,
                         trace_loop=None if end is None or trace is None else end == "loop")

    # ------------------------------------------------------------------ flows

    def _flows(self, value: object, agent_hosts: set[str]) -> list[Flow]:
        flows: list[Flow] = []
        if not isinstance(value, ParsedList):
            return flows
        ids: dict[str, str] = {}
        contracts: dict[str, tuple[str, str]] = {}  # agent host -> (contract, first flow)
        for index, node, record in value.items:
            path = index_path("flows", index)
            if not isinstance(record, ParsedRecord):
                continue
            kind = record.text("kind")
            flow_id = record.text("id") or (f"{kind}-{index}" if kind else None)
            if flow_id is not None and "id" in record.given and record.text("id") is None:
                flow_id = None  # invalid id, already reported
            if flow_id is not None:
                if flow_id in ids:
                    self.ctx.problem(
                        record.nodes.get("id", node),
                        child_path(path, "id"),
                        "a unique flow id",
                        f"{flow_id!r} again (also {ids[flow_id]})",
                    )
                else:
                    ids[flow_id] = path
            one_host = kind is not None and not KINDS[kind].two_ended
            ends = self._flow_host(record) if one_host else self._flow_ends(record)
            times = self._flow_times(record)
            if kind is not None:
                KINDS[kind].check(record, ends, agent_hosts, self.ctx, set(self.hosts.hosts))
                self._one_contract_per_agent(record, kind, ends, path, contracts)
            if flow_id is None or kind is None or ends is None or times is None:
                continue
            options = KINDS[kind].options(record)
            flows.append(
                Flow(
                    id=flow_id,
                    kind=kind,
                    src=ends[0],
                    dst=ends[1],
                    start_s=times[0],
                    stop_s=times[1],
                    options=options,
                )
            )
        return flows

    def _flow_host(self, record: ParsedRecord) -> tuple[str, str] | None:
        """A one-host flow's host (a command's), as (host, host)."""
        name = record.text("host")
        if name is None or not self._host_ref(record.nodes["host"], record.path_of("host"), name):
            return None
        return name, name

    def _flow_ends(self, record: ParsedRecord) -> tuple[str, str] | None:
        ends: list[str] = []
        for key in ("from", "to"):
            name = record.text(key)
            if name is not None and self._host_ref(record.nodes[key], record.path_of(key), name):
                ends.append(name)
        if len(ends) != 2:
            return None
        src, dst = ends
        if src == dst:
            self.ctx.problem(
                record.nodes["to"],
                record.path_of("to"),
                f"a host other than the sender {src!r}",
                repr(dst),
                "a flow runs between two hosts joined by links",
            )
            return None
        if self.adjacency is not None and dst not in _component(self.adjacency, src):
            self.ctx.problem(
                record.nodes["to"],
                record.path_of("to"),
                f"a host that links connect to {src!r}",
                f"{dst!r}, which no chain of links reaches from {src!r} (unroutable)",
                "add a link that joins them",
            )
            return None
        return src, dst

    def _flow_times(self, record: ParsedRecord) -> tuple[float, float | None] | None:
        start = record.number("start")
        stop = record.number("stop")
        if start is None or ("stop" in record.given and stop is None):
            return None
        duration = self.duration
        ok = True
        if duration is not None and start >= duration:
            self.ctx.problem(
                record.nodes["start"],
                record.path_of("start"),
                f"a start before the end of the scenario ({format_duration(duration)})",
                format_duration(start),
            )
            ok = False
        if stop is not None:
            if duration is not None and stop > duration:
                self.ctx.problem(
                    record.nodes["stop"],
                    record.path_of("stop"),
                    f"a stop no later than the scenario's duration ({format_duration(duration)})",
                    format_duration(stop),
                    "raise duration or leave stop out to run until the end",
                )
                ok = False
            elif stop <= start:
                self.ctx.problem(
                    record.nodes["stop"],
                    record.path_of("stop"),
                    f"a stop after the start ({format_duration(start)})",
                    format_duration(stop),
                )
                ok = False
        return (start, stop) if ok else None

    def _one_contract_per_agent(self, record: ParsedRecord, kind: str,
                                ends: tuple[str, str] | None, path: str,
                                contracts: dict[str, tuple[str, str]]) -> None:
        """An agent serves one policy: an RTC receiver's (rtc-onl4) or a TCP sender's
        (tcp-mi5), not both."""
        asked = KINDS[kind].policy_contract(record, ends) if ends is not None else None
        if asked is None:
            return
        key, host, contract = asked
        first = contracts.setdefault(host, (contract, path))
        if first[0] != contract:
            self.ctx.problem(
                record.nodes[key],
                record.path_of(key),
                f"the policy that the agent on {host!r} serves ({first[0]}, for {first[1]})",
                f"a second policy for it ({contract})",
                "one agent serves one policy: move one of the flows to another host or use "
                "the rule-based controller for it",
            )

    # ----------------------------------------------------------------- agents

    def _agents(self, value: object) -> list[Agent]:
        agents: list[Agent] = []
        if not isinstance(value, ParsedMap):
            return agents
        for host, key_node, _, options in value.entries:
            known = self._host_ref(key_node, child_path("agents", host), host)
            if not isinstance(options, ParsedRecord) or not known:
                continue
            deadline, fallback = options.number("deadline"), options.text("fallback")
            if deadline is None or fallback is None:
                continue
            checkpoint = options.text("checkpoint")
            if checkpoint is not None:
                checkpoint = self.ctx.located(checkpoint)
            agents.append(Agent(host, checkpoint, deadline, fallback,
                                options.text("device") or "cpu", options.number("poll") or 0.0))
        return agents

    # ----------------------------------------------------------------- subnet

    def _subnet(self, link_count: int) -> ipaddress.IPv4Network | None:
        subnet = self.record.get("subnet")
        if not isinstance(subnet, ipaddress.IPv4Network):
            return None
        needed = ADDRESSES_PER_LINK * link_count
        if subnet.num_addresses < needed:
            self.ctx.problem(
                self.record.nodes["subnet"],
                "subnet",
                f"a network with at least {needed} addresses "
                f"({ADDRESSES_PER_LINK} for each of {link_count} links)",
                f"{subnet} ({subnet.num_addresses} addresses)",
                "use a shorter prefix",
            )
        return subnet


def _component(adjacency: Mapping[str, set[str]], start: str) -> set[str]:
    seen = {start}
    pending = [start]
    while pending:
        for neighbour in adjacency.get(pending.pop(), ()):
            if neighbour not in seen:
                seen.add(neighbour)
                pending.append(neighbour)
    return seen

