"""Value types the scenario's fields share: names, units, the estimator.

Separate from :mod:`netlab.scenario.definition` so the flow kinds
(:mod:`netlab.run.kinds`), which declare their own fields with these types,
can be imported before the scenario's whole structure is assembled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yaml.nodes import Node, ScalarNode, SequenceNode

from labcore import units
from netlab.scenario.fields import (
    Choice,
    Context,
    Custom,
    FieldType,
    Text,
    TraceRef,
    Unit,
    ValueProblem,
    closest,
)
from netlab.scenario.loader import NotAScalar, scalar_value
from netlab.scenario.model import Estimator

# Linux interface names hold at most 15 characters (IFNAMSIZ - 1).  The lab
# names each host's link ends ``to-<peer>`` (3 + 12) and its namespaces
# ``nl-<lab>.<host>`` ('.' never appears in a name, so two labs' namespaces
# never collide); names derived from the lab alone (``nl-<lab>``) must fit
# too, so both limits are 12.
MAX_LAB_NAME = 12
MAX_HOST_NAME = 12
MAX_LINK_NAME = 2 * MAX_HOST_NAME + 1  # room for the default "<a>-<b>"
MAX_FLOW_ID = 32
# Linux's TCP_CA_NAME_MAX is 16 including the terminating NUL.
MAX_CC_NAME = 15

_NAME = r"[a-z]([a-z0-9-]*[a-z0-9])?"
# Names netlab itself uses under the run root or in the kernel (the VM
# infrastructure's run directory, the capability probe's namespaces).
RESERVED_LAB_NAMES = ("vagrant", "probe")

LAB_NAME = Text(
    expected=f"a lab name of 1-{MAX_LAB_NAME} lowercase letters, digits or '-' "
    "(starting with a letter, not ending with '-', not "
    + " or ".join(repr(n) for n in RESERVED_LAB_NAMES) + ", which netlab uses itself)",
    pattern=rf"(?!(?:{'|'.join(RESERVED_LAB_NAMES)})$){_NAME}",
    max_length=MAX_LAB_NAME,
    why=f"netlab derives namespace and interface names from it (nl-<lab>.<host>) and Linux "
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
USER_NAME = Text(
    expected="a user name such as root or alice",
    pattern=r"[a-z_][a-z0-9_-]*[$]?",
    max_length=32,
)
SYSCTL_KEY = Text(
    expected="a net.* sysctl name such as net.ipv4.tcp_ecn",
    pattern=r"net(\.[a-z0-9_-]+)+",
    why="only net.* sysctls belong to a network namespace; others would change the whole machine",
)

# Budgets: the largest values a lab can honour.  A week of run time; a
# minute of one-way delay (a link holds rate x delay in memory); 10 Tbit/s,
# beyond any interface a lab shapes; a million packets or 1 GiB of queue.
MAX_DURATION_S = 7 * 86400.0
MAX_DELAY_S = 60.0
MAX_RATE_BPS = 10e12
MAX_QUEUE_PACKETS = 1_000_000
MAX_QUEUE_BYTES = 1 << 30


def _at_most(maximum: float, expected: str) -> Callable[[object], str | None]:
    def limit(value: object) -> str | None:
        return expected if isinstance(value, int | float) and value > maximum else None
    return limit


def _queue_limit(value: object) -> str | None:
    if isinstance(value, units.QueueLimit) and (
            (value.packets or 0) > MAX_QUEUE_PACKETS or (value.bytes or 0) > MAX_QUEUE_BYTES):
        return "a queue of at most 1000000pkt or 1GiB"
    return None


DURATION = Unit(units.DURATION_EXPECTED, units.parse_duration, units.DURATION_PATTERN,
                ("10ms", "1.5s", "2min"), limit=_at_most(MAX_DURATION_S, "at most 168h (a week)"))
POSITIVE_DURATION = Unit(units.DURATION_EXPECTED, units.parse_duration, units.DURATION_PATTERN,
                         ("60s", "1ms", "2min"), positive=True,
                         limit=_at_most(MAX_DURATION_S, "at most 168h (a week)"))
DELAY = Unit(units.DURATION_EXPECTED, units.parse_duration, units.DURATION_PATTERN,
             ("10ms", "1.5s"), limit=_at_most(MAX_DELAY_S, "a delay of at most 60s"))
RATE = Unit(units.RATE_EXPECTED, units.parse_rate, units.RATE_PATTERN,
            ("10Mbit", "800kbit", "2.5Mbit", "1.25MB/s"),
            limit=_at_most(MAX_RATE_BPS, "a rate of at most 10000Gbit (10 Tbit/s)"))
SIZE = Unit(units.SIZE_EXPECTED, units.parse_size, units.SIZE_PATTERN, ("1500B", "64kB", "64KiB"),
            limit=_at_most(MAX_QUEUE_BYTES, "a size of at most 1GiB"))
QUEUE = Unit(units.QUEUE_EXPECTED, units.parse_queue_limit, units.QUEUE_PATTERN,
             ("100pkt", "64kB", "150KiB"), limit=_queue_limit)
PERCENT = Unit(units.PERCENT_EXPECTED, units.parse_percent, units.PERCENT_PATTERN,
               ("0.5%", "2%"))
#: netlab.agent.polling.MAX_POLL_BUDGET (this layer does not import the agent)
MAX_POLL_SHARE = 0.5
POLL_SHARE_EXPECTED = "a share of one core such as 30%"


def _poll_share(text: str) -> float:
    """``'30%'`` → 0.3; a bare fraction gets the percentage it most likely means."""
    try:
        return units.parse_percent(text)
    except units.UnitError:
        try:
            number = float(text)
        except ValueError:
            raise units.UnitError(POLL_SHARE_EXPECTED, repr(text)) from None
        if 0 < number <= 1:
            raise units.UnitError(POLL_SHARE_EXPECTED, f"{text!r} (a number without %)",
                                  f"write {number * 100:g}% for {number:g} of a core") from None
        raise


POLL_SHARE = Unit(POLL_SHARE_EXPECTED, _poll_share, units.PERCENT_PATTERN,
                  ("20%", "30%"),
                  limit=_at_most(MAX_POLL_SHARE, "at most 50% of one core (the flows and "
                                                 "links need the rest)"))

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


class CaptureDirections(FieldType):
    """A link's ``capture:``: true (both directions), false, or a list of up/down."""

    expected = "true, false, or a list of directions such as [up] or [up, down]"

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        if isinstance(node, SequenceNode):
            chosen: list[str] = []
            for index, item in enumerate(node.value):
                word = item.value if isinstance(item, ScalarNode) else None
                if word not in ("up", "down"):
                    return ctx.problem(item, f"{path}[{index}]", "up or down")
                if word in chosen:
                    return ctx.problem(item, f"{path}[{index}]", "each direction once",
                                       f"{word} again")
                chosen.append(word)
            if not chosen:
                return ctx.problem(node, path, self.expected, "an empty list",
                                   "write capture: false to capture nothing")
            return tuple(d for d in ("up", "down") if d in chosen)
        if isinstance(node, ScalarNode):
            try:
                value = scalar_value(node)
            except NotAScalar:
                value = None
            if value is True:
                return ("up", "down")
            if value is False:
                return ()
        return ctx.problem(node, path, self.expected)

    def schema(self) -> dict[str, Any]:
        return {"oneOf": [{"type": "boolean"},
                          {"type": "array", "items": {"enum": ["up", "down"]},
                           "minItems": 1, "uniqueItems": True}],
                "description": self.expected}


CAPTURE = CaptureDirections()
