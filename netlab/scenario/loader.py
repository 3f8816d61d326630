"""YAML text → node tree that still knows its line numbers.

``yaml.safe_load`` throws away positions, and an error message without a line
number sends the user hunting; so the scenario is *composed* (parsed into
nodes that carry marks) and the validator reads the nodes directly.  Merge
keys (``<<: *anchor``) are expanded here so shared link specs work.
"""

from __future__ import annotations

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from netlab.scenario.problems import ProblemLog

_constructor = SafeConstructor()


def line_of(node: Node) -> int:
    """1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


def compose(text: str, log: ProblemLog) -> Node | None:
    """Parse ``text`` into a node tree; YAML syntax errors go to ``log``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else None
        problem = exc.problem or "a YAML syntax error"
        if exc.context:
            context = exc.context
            started = exc.context_mark
            if started is not None and mark is not None and started.line != mark.line:
                context += f" that starts on line {started.line + 1}"
            problem = f"{problem} ({context})"
        log.add(line, "", "valid YAML", problem, "check indentation, colons and quotes")
        return None
    except yaml.YAMLError as exc:  # e.g. a reader error on bad bytes
        log.add(None, "", "valid YAML", str(exc).splitlines()[0])
        return None
    if root is None:
        return None
    try:
        _expand_merge_keys(root)
    except ConstructorError as exc:
        mark = exc.problem_mark
        line = int(mark.line) + 1 if mark is not None else None
        log.add(line, "", "a valid YAML merge key (<<)", exc.problem or "an invalid merge")
        return None
    return root


def _expand_merge_keys(root: Node) -> None:
    seen: set[int] = set()
    pending: list[Node] = [root]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            _flatten(node)
            for key, value in node.value:
                pending.extend((key, value))
        elif isinstance(node, SequenceNode):
            pending.extend(node.value)


def _flatten(node: MappingNode) -> None:
    """Expand ``<<`` merges as safe YAML would, keeping repeated *written* keys visible.

    Merged keys are dropped where the mapping writes the key itself or an
    earlier merge source provides it (YAML's precedence), so only keys the
    user actually repeated are reported as duplicates.
    """
    explicit = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
    if len(explicit) == len(node.value):
        return
    _constructor.flatten_mapping(node)
    merged = node.value[: len(node.value) - len(explicit)]
    written = {k.value for k, _ in explicit if isinstance(k, ScalarNode)}
    kept: list[tuple[Node, Node]] = []
    seen: set[object] = set()
    # flatten_mapping lists later merge sources first and lets the last win.
    for key, value in reversed(merged):
        name = key.value if isinstance(key, ScalarNode) else id(key)
        if name in written or name in seen:
            continue
        seen.add(name)
        kept.append((key, value))
    node.value = [*reversed(kept), *explicit]


class NotAScalar(ValueError):
    """A scalar node whose tag safe YAML cannot build (e.g. ``!!python/object``)."""


def scalar_value(node: ScalarNode) -> object:
    """The Python value of a scalar node as safe YAML reads it (str, int, float, bool, None...)."""
    try:
        return _constructor.construct_object(node, deep=True)
    except ConstructorError as exc:
        raise NotAScalar(exc.problem or f"unsupported tag {node.tag}") from exc


def describe(node: Node) -> str:
    """A short description of what the user wrote, for "found ..." in messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    assert isinstance(node, ScalarNode)
    try:
        value = scalar_value(node)
    except NotAScalar:
        return f"a value tagged {node.tag}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        return repr(value)
    return f"{value!r} (a {type(value).__name__})"
