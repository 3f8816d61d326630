"""The scenario file's structure, written once as data.

The validator parses with :data:`SCENARIO` and ``netlab schema`` prints
``SCENARIO.schema()``; rules that span several fields (unknown hosts, unique
names, routability, jitter ≤ delay) live in :mod:`netlab.scenario.validate`.

Link shaping may be written per direction (``up`` shapes a→b, ``down``
shapes b→a) or once at the link level for both directions; a key given in
``up``/``down`` overrides the link-level one for that direction.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from netlab.run.kinds import KINDS
from netlab.scenario.fields import (
    Choice,
    Custom,
    Either,
    Entry,
    Integer,
    ListOf,
    MapOf,
    Record,
    Tagged,
    ValueProblem,
)
from netlab.scenario.values import (
    CAPTURE,
    CHECKPOINT,
    DELAY,
    DURATION,
    FLOW_ID,
    HOST_NAME,
    LAB_NAME,
    LINK_NAME,
    PERCENT,
    POLL_SHARE,
    POSITIVE_DURATION,
    QUEUE,
    RATE,
    SYSCTL_KEY,
    TRACE,
    TRACE_END,
    USER_NAME,
)

_RFC1918 = tuple(
    ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
MAX_SUBNET_PREFIX = 24
SUBNET_EXPECTED = (
    f"a private IPv4 network of /{MAX_SUBNET_PREFIX} or larger inside 10.0.0.0/8, "
    "172.16.0.0/12 or 192.168.0.0/16, such as 10.77.0.0/16"
)


def _subnet(value: object) -> ipaddress.IPv4Network:
    if not isinstance(value, str):
        raise ValueProblem()
    try:
        network = ipaddress.IPv4Network(value.strip(), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.IPv4Network(value.strip(), strict=False)
        except ValueError:
            hint = "write an address and prefix length, e.g. 10.77.0.0/16"
            raise ValueProblem(hint=hint) from exc
        raise ValueProblem(hint=f"host bits are set; write {loose}") from exc
    if not any(network.subnet_of(private) for private in _RFC1918):
        raise ValueProblem(hint="labs use private (RFC 1918) addresses only")
    if network.prefixlen > MAX_SUBNET_PREFIX:
        raise ValueProblem(hint=f"a /{network.prefixlen} is too small; use a /{MAX_SUBNET_PREFIX}"
                           " or a shorter prefix")
    return network


SUBNET = Custom(SUBNET_EXPECTED, _subnet, {"type": "string", "pattern": r"^[0-9./]+$"})


def _sysctl_value(value: object) -> str:
    if isinstance(value, bool):
        raise ValueProblem(hint="write 1 or 0")
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueProblem()


SYSCTL_VALUE = Custom(
    "a sysctl value (text or a number)", _sysctl_value, {"type": ["string", "integer", "number"]}
)

HOST_OPTIONS = Record(
    {
        "sysctls": Entry(
            MapOf(SYSCTL_KEY, SYSCTL_VALUE, "a mapping of net.* sysctl names to values"),
            description="sysctls set inside this host's namespace (net.* only)",
        ),
        "user": Entry(
            USER_NAME,
            description="who this host's flows and plugins run as: a user name, or root to "
            "keep root's privileges; absent: the sudo caller, else the system user netlab",
        ),
    },
    "host options (sysctls, user)",
    null_is_empty=True,
)
# A lab's hosts, links and flows each stay within what one machine runs: a
# namespace, a process or a pair of interfaces apiece.
MAX_HOSTS = 256
MAX_LINKS = 1024
MAX_FLOWS = 1024

HOSTS = Either(
    ListOf(HOST_NAME, "a list of host names such as [alice, bob]", min_items=1,
           max_items=MAX_HOSTS),
    MapOf(HOST_NAME, HOST_OPTIONS, "a mapping of host names to options", min_items=1,
          max_items=MAX_HOSTS),
    "a list of host names, or a mapping of host names to options (sysctls, user)",
)

SHAPE_ENTRIES: dict[str, Entry] = {
    "rate": Entry(RATE, description="capacity (whole Ethernet frames); absent: unshaped"),
    "delay": Entry(DELAY, default=0.0, default_text="0ms", description="one-way delay"),
    "jitter": Entry(DELAY, default=0.0, default_text="0ms",
                    description="delay variation, at most the delay"),
    "loss": Entry(PERCENT, default=0.0, default_text="0%", description="random loss"),
    "queue": Entry(QUEUE, description="droptail queue limit in packets (100pkt) or bytes (64kB)"),
    "trace": Entry(TRACE, description="a capacity trace replayed in real time (replaces rate)"),
    "trace_end": Entry(TRACE_END, description="when the trace ends: loop it, or stop and keep its "
                       "last value (default: the trace format's own habit; Mahimahi and "
                       "OpenNetLab loop, Genet stops)"),
}
# Link-level keys apply to both directions, so they carry no defaults of their
# own: a default there would hide the direction's value when merging.
_LINK_LEVEL_SHAPE: dict[str, Entry] = {
    key: Entry(entry.type, description=f"{entry.description} (both directions)")
    for key, entry in SHAPE_ENTRIES.items()
}
DIRECTION = Record(
    {
        key: Entry(entry.type, default_text=entry.default_text, description=entry.description)
        for key, entry in SHAPE_ENTRIES.items()
    },
    "a link direction (rate, delay, jitter, loss, queue, trace)",
    null_is_empty=True,
)
LINK = Record(
    {
        "name": Entry(LINK_NAME, description="unique link name; default '<a>-<b>'"),
        "endpoints": Entry(
            ListOf(HOST_NAME, "two host names such as [alice, bob]", min_items=2, max_items=2),
            required=True,
        ),
        **_LINK_LEVEL_SHAPE,
        "up": Entry(DIRECTION, description="shaping of endpoints[0] → endpoints[1]"),
        "down": Entry(DIRECTION, description="shaping of endpoints[1] → endpoints[0]"),
        "capture": Entry(CAPTURE, description="record packets at both ends of the link (pcap): "
                                              "true, or the directions, e.g. [up]; results.json "
                                              "gets traffic[] per 5-tuple from them"),
    },
    "a link",
)
LINKS = ListOf(LINK, "a list of links", null_is_empty=True,
               max_items=MAX_LINKS)

FLOW_COMMON: dict[str, Entry] = {
    "id": Entry(FLOW_ID, description="unique flow id; default '<kind>-<index>'"),
    "start": Entry(DURATION, default=0.0, default_text="0s",
                   description="start time after the lab is up"),
    "stop": Entry(DURATION, description="stop time; default: the end of the scenario"),
}
# Each kind declares its own fields (netlab/run/kinds/<kind>.py): two-ended
# kinds their from/to (TWO_ENDS), a command its host.
FLOW_VARIANTS: dict[str, Mapping[str, Entry]] = {
    name: kind.fields for name, kind in KINDS.items()
}
FLOW = Tagged("kind", FLOW_COMMON, FLOW_VARIANTS, "a flow")
FLOWS = ListOf(FLOW, "a list of flows", null_is_empty=True,
               max_items=MAX_FLOWS)

FALLBACKS = ("keep", "gcc", "kernel")
DEVICES = ("cpu", "cuda")
AGENT = Record(
    {
        "checkpoint": Entry(CHECKPOINT, description="policy weights; absent: the initial policy"),
        "deadline": Entry(POSITIVE_DURATION, default=0.001, default_text="1ms",
                          description="reply budget per decision"),
        "fallback": Entry(Choice(FALLBACKS), default="keep", default_text="keep",
                          description="what acts when a reply misses the deadline"),
        "device": Entry(Choice(DEVICES), default="cpu", default_text="cpu",
                        description="where the policy runs: cuda serves through captured "
                                    "CUDA graphs, and falls back to cpu (printed, and in "
                                    "results agents[].device) where there is no GPU"),
        "poll": Entry(POLL_SHARE, default=0.0, default_text="0%",
                      description="share of one core the agent may busy-poll for requests "
                                  "due soon instead of sleeping: lower latency for that CPU "
                                  "time (netlab agent serve --poll-budget)"),
    },
    "agent options (checkpoint, deadline, fallback, device, poll)",
    null_is_empty=True,
)
AGENTS = MapOf(
    HOST_NAME, AGENT, "a mapping of host names to agent options", null_is_empty=True
)

SCENARIO = Record(
    {
        "name": Entry(LAB_NAME, required=True, description="lab name"),
        "duration": Entry(POSITIVE_DURATION, required=True, description="how long flows run"),
        "seed": Entry(
            Integer("a seed: a whole number from 0 to 4294967295", minimum=0, maximum=2**32 - 1),
            default=0,
            default_text=0,
            description="seed for every random choice (loss, traces, media)",
        ),
        "hosts": Entry(HOSTS, required=True),
        "links": Entry(LINKS),
        "flows": Entry(FLOWS),
        "agents": Entry(AGENTS),
        "subnet": Entry(SUBNET, description="address range for the lab; default: chosen free"),
    },
    "a scenario (name, duration, seed, hosts, links, flows, agents, subnet)",
)
