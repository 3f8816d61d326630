"""Declarative field types: each one both checks a YAML node and describes itself as JSON Schema.

The scenario's structure is written once (in :mod:`netlab.scenario.definition`)
out of these types; the validator parses with them and ``netlab schema``
prints their :meth:`FieldType.schema`, so the editor schema and the
validator cannot drift apart.

Parsing never raises: a type reports each problem it finds to the
:class:`Context` and returns :data:`INVALID`, so one run finds every mistake.
Containers return ``Parsed*`` values that keep their YAML nodes, so later
cross-field checks (unknown hosts, duplicate names) can still point at lines.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from labcore.units import UnitError
from netlab.scenario.loader import NotAScalar, describe, line_of, scalar_value
from netlab.scenario.problems import ProblemLog

JsonSchema = dict[str, Any]


class _Invalid:
    """Marks a value that failed to parse (its problem is already reported)."""

    _instance: _Invalid | None = None

    def __new__(cls) -> _Invalid:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def child_path(path: str, key: str) -> str:
    """``links[0]`` + ``up`` → ``links[0].up``; odd keys are quoted: ``sysctls["net.x"]``."""
    if _IDENTIFIER.match(key):
        return f"{path}.{key}" if path else key
    return f'{path}["{key}"]'


def index_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


class ValueProblem(ValueError):
    """Raised by a :class:`Custom` converter; becomes one reported problem."""

    def __init__(self, expected: str | None = None, hint: str | None = None) -> None:
        super().__init__(expected or hint or "invalid value")
        self.expected = expected
        self.hint = hint


@dataclass
class Context:
    """Where problems go while parsing one file; ``base_dir`` resolves the
    relative paths the file names (traces, checkpoints); ``files`` maps paths
    as written to copies elsewhere (a file shipped to another machine)."""

    log: ProblemLog
    base_dir: Path | None = None
    files: Mapping[str, str] = field(default_factory=dict)

    def located(self, written: str) -> str:
        """Where a path the file writes really is."""
        return self.files.get(written, written)

    def problem(
        self,
        node: Node | None,
        path: str,
        expected: str,
        found: str | None = None,
        hint: str | None = None,
    ) -> _Invalid:
        line = line_of(node) if node is not None else None
        if found is None:
            found = describe(node) if node is not None else "nothing"
        self.log.add(line, path, expected, found, hint)
        return INVALID


def closest(word: str, choices: list[str]) -> str | None:
    """The valid spelling nearest to ``word`` (for "did you mean ...?")."""
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _quote_hint(node: ScalarNode, value: object) -> str | None:
    """YAML 1.1 reads unquoted ``no``/``on``/``1.0`` as non-strings; say so."""
    if node.style is None and not isinstance(value, str) and value is not None:
        return f"quote it to make it text: '{node.value}'"
    return None


class FieldType(ABC):
    """A kind of value a scenario field may hold."""

    expected: str  # "a rate such as 10Mbit", used in messages and schema descriptions

    @abstractmethod
    def parse(self, node: Node, path: str, ctx: Context) -> object:
        """The parsed value, or :data:`INVALID` after reporting to ``ctx``."""

    @abstractmethod
    def schema(self) -> JsonSchema:
        """This type as a JSON Schema (draft 2020-12) fragment."""


# ----------------------------------------------------------------------- scalars


def _scalar(node: Node, path: str, ctx: Context, expected: str) -> object:
    if not isinstance(node, ScalarNode):
        return ctx.problem(node, path, expected)
    try:
        return scalar_value(node)
    except NotAScalar as exc:
        return ctx.problem(node, path, expected, hint=str(exc))


@dataclass
class Text(FieldType):
    """A string, optionally restricted by a regular expression and a length."""

    expected: str
    pattern: str | None = None
    max_length: int | None = None
    why: str | None = None  # appended to the hint when pattern/length fail
    description: str = ""

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        value = _scalar(node, path, ctx, self.expected)
        if value is INVALID:
            return INVALID
        if not isinstance(value, str):
            assert isinstance(node, ScalarNode)
            return ctx.problem(node, path, self.expected, hint=_quote_hint(node, value))
        too_long = self.max_length is not None and len(value) > self.max_length
        if value == "" or too_long or (self.pattern and not re.fullmatch(self.pattern, value)):
            found = repr(value)
            if too_long:
                found += f" ({len(value)} characters)"
            return ctx.problem(node, path, self.expected, found, self.why)
        return value

    def schema(self) -> JsonSchema:
        result: JsonSchema = {"type": "string", "minLength": 1}
        if self.pattern:
            result["pattern"] = f"^(?:{self.pattern})$"
        if self.max_length is not None:
            result["maxLength"] = self.max_length
        result["description"] = self.description or self.expected
        return result


@dataclass
class Integer(FieldType):
    expected: str
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        value = _scalar(node, path, ctx, self.expected)
        if value is INVALID:
            return INVALID
        if isinstance(value, bool) or not isinstance(value, int):
            return ctx.problem(node, path, self.expected)
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            return ctx.problem(node, path, self.expected)
        return value

    def schema(self) -> JsonSchema:
        result: JsonSchema = {"type": "integer"}
        if self.minimum is not None:
            result["minimum"] = self.minimum
        if self.maximum is not None:
            result["maximum"] = self.maximum
        result["description"] = self.description or self.expected
        return result


@dataclass
class Unit(FieldType):
    """A number with a unit (``10ms``), parsed by one of :mod:`labcore.units`' functions.

    Bare YAML numbers are passed to the parser as text so the user gets the
    parser's "add a unit" advice rather than a type error.
    """

    expected: str
    parser: Callable[[str], object]
    pattern: str
    examples: tuple[str, ...]
    positive: bool = False  # reject zero (e.g. a scenario's duration)
    description: str = ""
    #: The field's budget: given the parsed value, what is wrong with it (or None).
    limit: Callable[[object], str | None] | None = None

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        value = _scalar(node, path, ctx, self.expected)
        if value is INVALID:
            return INVALID
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return ctx.problem(node, path, self.expected)
        assert isinstance(node, ScalarNode)
        text = value if isinstance(value, str) else str(node.value)
        try:
            parsed = self.parser(text)
        except UnitError as exc:
            return ctx.problem(node, path, exc.expected, exc.found, exc.hint)
        if self.positive and isinstance(parsed, int | float) and parsed <= 0:
            return ctx.problem(node, path, self.expected.replace("a ", "a positive ", 1))
        if self.limit is not None and (too_much := self.limit(parsed)) is not None:
            return ctx.problem(node, path, too_much, repr(text))
        return parsed

    def schema(self) -> JsonSchema:
        return {
            "type": "string",
            "pattern": self.pattern,
            "examples": list(self.examples),
            "description": self.description or self.expected,
        }


@dataclass
class Choice(FieldType):
    """One of a fixed set of words."""

    options: tuple[str, ...]
    description: str = ""

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(self.options)

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        value = _scalar(node, path, ctx, self.expected)
        if value is INVALID:
            return INVALID
        if not isinstance(value, str) or value not in self.options:
            hint = None
            if isinstance(value, str) and (near := closest(value, list(self.options))):
                hint = f"did you mean {near!r}?"
            elif isinstance(node, ScalarNode):
                hint = _quote_hint(node, value)
            return ctx.problem(node, path, self.expected, hint=hint)
        return value

    def schema(self) -> JsonSchema:
        return {"enum": list(self.options), "description": self.description or self.expected}


@dataclass
class Custom(FieldType):
    """A scalar converted by a function that raises :class:`ValueProblem` when it cannot."""

    expected: str
    convert: Callable[[object], object]
    json_schema: JsonSchema

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        value = _scalar(node, path, ctx, self.expected)
        if value is INVALID:
            return INVALID
        try:
            return self.convert(value)
        except ValueProblem as exc:
            return ctx.problem(node, path, exc.expected or self.expected, hint=exc.hint)

    def schema(self) -> JsonSchema:
        return {**self.json_schema, "description": self.expected}


@dataclass
class TraceRef(Text):
    """A trace file or bundled trace name, parsed now so a broken trace is
    reported with the scenario's other problems, before anything is built."""

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        value = super().parse(node, path, ctx)
        if value is INVALID:
            return INVALID
        assert isinstance(value, str)
        from shaping.traces import TraceError, load_trace

        value = ctx.located(value)
        try:
            load_trace(value, base_dir=ctx.base_dir)
        except TraceError as exc:
            at = f"{exc.where}: " if exc.line is not None else ""  # no absolute corpus paths
            fix = f"; {exc.fix}" if exc.fix else ""
            return ctx.problem(node, path, self.expected, repr(value),
                               hint=f"the trace does not load: {at}{exc.what}{fix}")
        except OSError as exc:
            return ctx.problem(node, path, self.expected, repr(value),
                               hint=f"{exc.strerror}; `netlab traces list` shows bundled traces")
        return value


# -------------------------------------------------------------------- containers


@dataclass
class ParsedList:
    """A parsed list: ``items`` holds (index, node, value) for every entry, valid or not."""

    node: SequenceNode
    path: str
    items: list[tuple[int, Node, object]]

    def valid(self) -> Iterator[tuple[int, Node, object]]:
        return (item for item in self.items if item[2] is not INVALID)


@dataclass
class ParsedMap:
    """A parsed mapping with free keys: (key, key node, value node, value) per entry."""

    node: MappingNode
    path: str
    entries: list[tuple[str, Node, Node, object]]


@dataclass
class ParsedRecord:
    """A parsed mapping with known keys; invalid or absent keys are missing from ``values``."""

    node: Node
    path: str
    values: dict[str, object] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)  # value node of each key present
    given: set[str] = field(default_factory=set)  # keys written in the file (valid or not)

    def line(self, key: str | None = None) -> int:
        node = self.nodes.get(key, self.node) if key is not None else self.node
        return line_of(node)

    def path_of(self, key: str) -> str:
        return child_path(self.path, key)

    def get(self, key: str) -> object:
        return self.values.get(key)

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        return value if isinstance(value, str) else None

    def number(self, key: str) -> float | None:
        value = self.values.get(key)
        return float(value) if isinstance(value, int | float) else None

    def record(self, key: str) -> ParsedRecord | None:
        value = self.values.get(key)
        return value if isinstance(value, ParsedRecord) else None


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _nullable(schema: JsonSchema) -> JsonSchema:
    return {"anyOf": [schema, {"type": "null"}], "description": schema["description"]}


def _check_container(
    node: Node, path: str, ctx: Context, expected: str, kind: type[Node]
) -> bool:
    if not isinstance(node, kind):
        ctx.problem(node, path, expected)
        return False
    return True


@dataclass
class ListOf(FieldType):
    item: FieldType
    expected: str
    min_items: int = 0
    max_items: int | None = None
    null_is_empty: bool = False  # ``flows:`` with every entry commented out
    description: str = ""

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        if self.null_is_empty and _is_null(node):
            return ParsedList(SequenceNode("tag:yaml.org,2002:seq", [], node.start_mark), path, [])
        if not _check_container(node, path, ctx, self.expected, SequenceNode):
            return INVALID
        assert isinstance(node, SequenceNode)
        count = len(node.value)
        if count < self.min_items or (self.max_items is not None and count > self.max_items):
            noun = "entry" if count == 1 else "entries"
            found = f"a list of {count} {noun}" if count else "an empty list"
            expected = self.expected
            if self.max_items is not None and count > self.max_items > self.min_items:
                expected += f" (at most {self.max_items})"
            return ctx.problem(node, path, expected, found)
        items = [
            (index, item, self.item.parse(item, index_path(path, index), ctx))
            for index, item in enumerate(node.value)
        ]
        return ParsedList(node, path, items)

    def schema(self) -> JsonSchema:
        result: JsonSchema = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            result["minItems"] = self.min_items
        if self.max_items is not None:
            result["maxItems"] = self.max_items
        result["description"] = self.description or self.expected
        return _nullable(result) if self.null_is_empty else result


def _keys(
    node: MappingNode, path: str, ctx: Context
) -> Iterator[tuple[str, Node, Node]]:
    """Yield (key, key node, value node), reporting non-text and repeated keys."""
    first_line: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = scalar_value(key_node) if isinstance(key_node, ScalarNode) else INVALID
        if not isinstance(key, str):
            ctx.problem(key_node, path, "text keys", f"the key {describe(key_node)}")
            continue
        if key in first_line:
            ctx.problem(
                key_node,
                child_path(path, key),
                "each key once",
                f"{key!r} again (first on line {first_line[key]})",
                "remove one of them",
            )
            continue
        first_line[key] = line_of(key_node)
        yield key, key_node, value_node


@dataclass
class MapOf(FieldType):
    """A mapping whose keys are names (e.g. host → options)."""

    key: Text
    value: FieldType
    expected: str
    min_items: int = 0
    null_is_empty: bool = False
    description: str = ""
    max_items: int | None = None

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        if self.null_is_empty and _is_null(node):
            empty = MappingNode("tag:yaml.org,2002:map", [], node.start_mark)
            return ParsedMap(empty, path, [])
        if not _check_container(node, path, ctx, self.expected, MappingNode):
            return INVALID
        assert isinstance(node, MappingNode)
        if len(node.value) < self.min_items:
            return ctx.problem(node, path, self.expected, "an empty mapping")
        if self.max_items is not None and len(node.value) > self.max_items:
            return ctx.problem(node, path, f"{self.expected} (at most {self.max_items})",
                               f"a mapping of {len(node.value)} entries")
        entries: list[tuple[str, Node, Node, object]] = []
        for key, key_node, value_node in _keys(node, path, ctx):
            entry_path = child_path(path, key)
            if self.key.parse(key_node, entry_path, ctx) is INVALID:
                continue
            value = self.value.parse(value_node, entry_path, ctx)
            entries.append((key, key_node, value_node, value))
        return ParsedMap(node, path, entries)

    def schema(self) -> JsonSchema:
        result: JsonSchema = {
            "type": "object",
            "propertyNames": self.key.schema(),
            "additionalProperties": self.value.schema(),
            "description": self.description or self.expected,
        }
        if self.min_items:
            result["minProperties"] = self.min_items
        return _nullable(result) if self.null_is_empty else result


_NO_DEFAULT: Final = object()


@dataclass
class Entry:
    """One key of a record: its type, whether it is required, and its default.

    ``default`` is the parsed value used when the key is absent and
    ``default_text`` the same default as a user would write it (shown in the
    schema); a test checks the two agree.
    """

    type: FieldType
    required: bool = False
    default: object = _NO_DEFAULT
    default_text: str | int | None = None
    description: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    def schema(self) -> JsonSchema:
        result = self.type.schema()
        if self.description:
            result = {**result, "description": self.description}
        if self.default_text is not None:
            result = {**result, "default": self.default_text}
        return result


@dataclass
class Record(FieldType):
    """A mapping with a fixed set of keys; unknown keys are errors with a suggestion."""

    entries: Mapping[str, Entry]
    expected: str
    null_is_empty: bool = False  # ``alice:`` with nothing after it means "no options"
    description: str = ""

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        if self.null_is_empty and _is_null(node):
            return self._finish(ParsedRecord(node, path), ctx)
        if not _check_container(node, path, ctx, self.expected, MappingNode):
            return INVALID
        assert isinstance(node, MappingNode)
        noun = self.expected.split(" (")[0]  # "a link (…)" → "a link"
        return parse_entries(node, path, ctx, self.entries, noun)

    def _finish(self, record: ParsedRecord, ctx: Context) -> ParsedRecord:
        return finish_record(record, ctx, self.entries)

    def schema(self) -> JsonSchema:
        result = record_schema(self.entries)
        result["description"] = self.description or self.expected
        return _nullable(result) if self.null_is_empty else result


def parse_entries(
    node: MappingNode,
    path: str,
    ctx: Context,
    entries: Mapping[str, Entry],
    what: str,
    ignore: frozenset[str] = frozenset(),
) -> ParsedRecord:
    """Parse each known key of ``node``; report unknown keys (with the nearest known one).

    Keys in ``ignore`` were already handled by the caller.
    """
    record = ParsedRecord(node, path)
    known = list(entries)
    for key, key_node, value_node in _keys(node, path, ctx):
        if key in ignore:
            continue
        entry = entries.get(key)
        if entry is None:
            near = closest(key, known)
            ctx.problem(
                key_node,
                child_path(path, key),
                f"a key of {what} ({', '.join(known)})",
                f"unknown key {key!r}",
                f"did you mean {near!r}?" if near else None,
            )
            continue
        record.given.add(key)
        record.nodes[key] = value_node
        value = entry.type.parse(value_node, child_path(path, key), ctx)
        if value is not INVALID:
            record.values[key] = value
    return finish_record(record, ctx, entries)


def finish_record(
    record: ParsedRecord, ctx: Context, entries: Mapping[str, Entry]
) -> ParsedRecord:
    """Report missing required keys and fill in defaults."""
    for key, entry in entries.items():
        if key in record.given:
            continue
        if entry.required:
            ctx.problem(
                record.node,
                child_path(record.path, key),
                entry.type.expected,
                "nothing (the key is missing)",
            )
        elif entry.has_default:
            record.values[key] = entry.default
    return record


def record_schema(entries: Mapping[str, Entry]) -> JsonSchema:
    result: JsonSchema = {
        "type": "object",
        "properties": {key: entry.schema() for key, entry in entries.items()},
        "additionalProperties": False,
    }
    required = [key for key, entry in entries.items() if entry.required]
    if required:
        result["required"] = required
    return result


@dataclass
class Tagged(FieldType):
    """A record whose allowed keys depend on one key's value (a flow's ``kind``)."""

    tag: str
    common: Mapping[str, Entry]
    variants: Mapping[str, Mapping[str, Entry]]
    expected: str
    description: str = ""

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        if not _check_container(node, path, ctx, self.expected, MappingNode):
            return INVALID
        assert isinstance(node, MappingNode)
        tag_type = Choice(tuple(self.variants))
        tag_node = next(
            (v for k, v in node.value if isinstance(k, ScalarNode) and k.value == self.tag), None
        )
        tag_path = child_path(path, self.tag)
        if tag_node is None:
            tag: object = ctx.problem(
                node, tag_path, tag_type.expected, "nothing (the key is missing)"
            )
        else:
            tag = tag_type.parse(tag_node, tag_path, ctx)
        if isinstance(tag, str):
            entries = {
                self.tag: Entry(tag_type, required=True),
                **self.common,
                **self.variants[tag],
            }
            what = f"{self.tag_noun}s of {self.tag} {tag}"  # "flows of kind rtc"
            return parse_entries(node, path, ctx, entries, what)
        # Without a valid tag, still check the other keys against every variant.
        # Optional here: what a variant requires depends on the tag (a command's
        # host, a two-ended flow's from/to), unknown while the tag is wrong.
        union: dict[str, Entry] = dict(self.common)
        for variant in self.variants.values():
            union.update(variant)
        union = {key: dataclasses.replace(entry, required=False) for key, entry in union.items()}
        return parse_entries(
            node, path, ctx, union, f"{self.tag_noun}s", ignore=frozenset({self.tag})
        )

    @property
    def tag_noun(self) -> str:
        return self.expected.split()[-1]

    def schema(self) -> JsonSchema:
        branches = []
        for tag, entries in self.variants.items():
            all_entries = {self.tag: Entry(Choice((tag,))), **self.common, **entries}
            then = record_schema(all_entries)
            branches.append({"if": {"properties": {self.tag: {"const": tag}}}, "then": then})
        required = [self.tag, *(k for k, e in self.common.items() if e.required)]
        return {
            "type": "object",
            "required": required,
            "properties": {self.tag: Choice(tuple(self.variants)).schema()},
            "allOf": branches,
            "description": self.description or self.expected,
        }


@dataclass
class Either(FieldType):
    """A list or a mapping (hosts may be written either way)."""

    as_list: FieldType
    as_mapping: FieldType
    expected: str
    description: str = ""

    def parse(self, node: Node, path: str, ctx: Context) -> object:
        if isinstance(node, SequenceNode):
            return self.as_list.parse(node, path, ctx)
        if isinstance(node, MappingNode):
            return self.as_mapping.parse(node, path, ctx)
        return ctx.problem(node, path, self.expected)

    def schema(self) -> JsonSchema:
        return {
            "oneOf": [self.as_list.schema(), self.as_mapping.schema()],
            "description": self.description or self.expected,
        }
