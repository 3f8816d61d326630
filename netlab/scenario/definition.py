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

from netlab import units
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
    Text,
    TraceRef,
    Unit,
    ValueProblem,
    closest,
)
from netlab.scenario.model import Estimator

# Linux interface names hold at most 15 characters (IFNAMSIZ - 1).  The lab
# names each host's link ends ``to-<peer>`` (3 + 12) and its namespaces
# ``nl-<lab>-<host>``; names derived from the lab alone (``nl-<lab>``) must
# fit too, so both limits are 12.
MAX_LAB_NAME = 12
MAX_HOST_NAME = 12
MAX_LINK_NAME = 2 * MAX_HOST_NAME + 1  # room for the default "<a>-<b>"
MAX_FLOW_ID = 32
# Linux's TCP_CA_NAME_MAX is 16 including the terminating NUL.
MAX_CC_NAME = 15

_NAME = r"[a-z]([a-z0-9-]*[a-z0-9])?"

LAB_NAME = Text(
    expected=f"a lab name of 1-{MAX_LAB_NAME} lowercase letters, digits or '-' "
    "(starting with a letter, not ending with '-')",
    pattern=_NAME,
    max_length=MAX_LAB_NAME,
    why=f"netlab derives namespace and interface names from it (nl-<lab>-...) and Linux "
    f"allows 15 characters, so lab names are limited to {MAX_LAB_NAME}",
)
HOST_NAME = Text(
    expected=f"a host name of 1-{MAX_HOST_NAME} lowercase letters, digits or '-' "
    "(starting with a letter, not ending with '-')",
    pattern=_NAME,
    max_length=MAX_HOST_NAME,
    why=f"each host's interfaces are named to-<peer host> and Linux allows 15 characters, "
    f"so host names are limited to {MAX_HOST_NAME}",
)
LINK_NAME = Text(
    expected=f"a link name of 1-{MAX_LINK_NAME} lowercase letters, digits or '-'",
    pattern=r"[a-z0-9]([a-z0-9-]*[a-z0-9])?",
    max_length=MAX_LINK_NAME,
)
FLOW_ID = Text(
    expected=f"a flow id of 1-{MAX_FLOW_ID} lowercase letters, digits, '.', '_' or '-'",
    pattern=r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?",
    max_length=MAX_FLOW_ID,
)
CC_NAME = Text(
    expected="a kernel TCP congestion control name such as cubic, reno or bbr",
    pattern=r"[a-z0-9_]+",
    max_length=MAX_CC_NAME,
)
TRACE = TraceRef(
    expected="a trace: a file path (relative to the scenario file) or a bundled trace name",
)
TRACE_END = Choice(("loop", "stop"))
CHECKPOINT = Text(expected="a checkpoint file path (relative to the scenario file)")
SYSCTL_KEY = Text(
    expected="a net.* sysctl name such as net.ipv4.tcp_ecn",
    pattern=r"net(\.[a-z0-9_-]+)+",
    why="only net.* sysctls belong to a network namespace; others would change the whole machine",
)

DURATION = Unit(units.DURATION_EXPECTED, units.parse_duration, units.DURATION_PATTERN,
                ("10ms", "1.5s", "2min"))
POSITIVE_DURATION = Unit(units.DURATION_EXPECTED, units.parse_duration, units.DURATION_PATTERN,
                         ("60s", "1ms", "2min"), positive=True)
RATE = Unit(units.RATE_EXPECTED, units.parse_rate, units.RATE_PATTERN,
            ("10Mbit", "800kbit", "2.5Mbit", "1.25MB/s"))
SIZE = Unit(units.SIZE_EXPECTED, units.parse_size, units.SIZE_PATTERN, ("1500B", "64kB", "64KiB"))
QUEUE = Unit(units.QUEUE_EXPECTED, units.parse_queue_limit, units.QUEUE_PATTERN,
             ("100pkt", "64kB", "150KiB"))
PERCENT = Unit(units.PERCENT_EXPECTED, units.parse_percent, units.PERCENT_PATTERN,
               ("0.5%", "2%"))

ESTIMATOR_EXPECTED = "an estimator: gcc, policy, fixed:<rate> (e.g. fixed:2Mbit) or plugin:<path>"


def _estimator(value: object) -> Estimator:
    if not isinstance(value, str):
        raise ValueProblem()
    if value == "gcc":
        return Estimator("gcc")
    if value == "policy":
        return Estimator("policy")
    if value.startswith("fixed:"):
        try:
            return Estimator("fixed", rate_bps=units.parse_rate(value.removeprefix("fixed:")))
        except units.UnitError as exc:
            raise ValueProblem(hint=f"after 'fixed:' {exc}") from exc
    if value.startswith("plugin:") and value.removeprefix("plugin:").strip():
        return Estimator("plugin", plugin=value.removeprefix("plugin:").strip())
    near = closest(value, ["gcc", "policy", "fixed:", "plugin:"])
    raise ValueProblem(hint=f"did you mean {near!r}?" if near else None)


ESTIMATOR = Custom(
    ESTIMATOR_EXPECTED,
    _estimator,
    {"type": "string", "pattern": f"^(?:gcc|policy|fixed:{units.RATE_PATTERN[1:-1]}|plugin:.+)$"},
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
        )
    },
    "host options (sysctls)",
    null_is_empty=True,
)
HOSTS = Either(
    ListOf(HOST_NAME, "a list of host names such as [alice, bob]", min_items=1),
    MapOf(HOST_NAME, HOST_OPTIONS, "a mapping of host names to options", min_items=1),
    "a list of host names, or a mapping of host names to options (sysctls)",
)

SHAPE_ENTRIES: dict[str, Entry] = {
    "rate": Entry(RATE, description="capacity (whole Ethernet frames); absent: unshaped"),
    "delay": Entry(DURATION, default=0.0, default_text="0ms", description="one-way delay"),
    "jitter": Entry(DURATION, default=0.0, default_text="0ms",
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
    },
    "a link",
)
LINKS = ListOf(LINK, "a list of links", null_is_empty=True)

FLOW_COMMON: dict[str, Entry] = {
    "id": Entry(FLOW_ID, description="unique flow id; default '<kind>-<index>'"),
    "from": Entry(HOST_NAME, required=True, description="sending host"),
    "to": Entry(HOST_NAME, required=True, description="receiving host"),
    "start": Entry(DURATION, default=0.0, default_text="0s",
                   description="start time after the lab is up"),
    "stop": Entry(DURATION, description="stop time; default: the end of the scenario"),
}
RATE_CONTROLS = ("kernel", "policy")
# The RTC sender's --probe-interval default, as a scenario would write it.
SENDER_PROBE_INTERVAL_TEXT = "2s"
FLOW_VARIANTS: dict[str, dict[str, Entry]] = {
    "probe": {
        "interval": Entry(POSITIVE_DURATION, description="time between probe packets"),
        "size": Entry(SIZE, description="probe packet size"),
    },
    "rtc": {
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
    },
    "tcp": {
        "cc": Entry(CC_NAME, default="cubic", default_text="cubic",
                    description="kernel congestion control (checked by preflight)"),
        "rate": Entry(RATE, description="application-limited sending rate; default: bulk"),
        "rate_control": Entry(Choice(RATE_CONTROLS), default="kernel", default_text="kernel",
                              description="who sets the pacing rate: the kernel's congestion "
                                          "control alone, or a policy served by the sender's "
                                          "agent (contract tcp-mi5)"),
    },
}
FLOW = Tagged("kind", FLOW_COMMON, FLOW_VARIANTS, "a flow")
FLOWS = ListOf(FLOW, "a list of flows", null_is_empty=True)

FALLBACKS = ("keep", "gcc", "kernel")
AGENT = Record(
    {
        "checkpoint": Entry(CHECKPOINT, description="policy weights; absent: the initial policy"),
        "deadline": Entry(POSITIVE_DURATION, default=0.001, default_text="1ms",
                          description="reply budget per decision"),
        "fallback": Entry(Choice(FALLBACKS), default="keep", default_text="keep",
                          description="what acts when a reply misses the deadline"),
    },
    "agent options (checkpoint, deadline, fallback)",
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
