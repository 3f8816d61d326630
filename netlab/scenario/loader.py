"""YAML text → node tree that still knows its line numbers.

``yaml.safe_load`` throws away positions, and an error message without a line
number sends the user hunting; so the scenario is *composed* (parsed into
nodes that carry marks) and the validator reads the nodes directly.  Merge
keys (``<<: *anchor``) are expanded here so shared link specs work.

Budgets come first, so no input can exhaust memory, time or the stack: the
text is at most ``MAX_SCENARIO_BYTES``; the event stream (parsed without
recursion) nests at most ``MAX_DEPTH`` deep; and the tree, counted as if every
alias were copied out (how "billion laughs" files blow up), holds at most
``MAX_EXPANDED_NODES`` nodes and contains no alias of its own ancestor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from netlab.errors import NetlabError
from netlab.scenario.problems import ProblemLog

_constructor = SafeConstructor()

#: A scenario is a page of YAML; the largest bundled one is under 2 kB.
MAX_SCENARIO_BYTES = 1 << 20
#: Deeper than any scenario field (a flow's options are 4 levels down), and
#: far from Python's recursion limit in the composer.
MAX_DEPTH = 32
#: Nodes after alias expansion: a scenario with a thousand flows is ~20 000.
MAX_EXPANDED_NODES = 200_000
_BUDGET_FIX = "write the scenario out plainly; anchors and merges are for sharing a few specs"


def line_of(node: Node) -> int:
    """1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


def compose(text: str, log: ProblemLog) -> Node | None:
    """Parse ``text`` into a node tree; YAML syntax errors and budgets go to ``log``."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_SCENARIO_BYTES:
        log.add(None, "", f"a scenario of at most {MAX_SCENARIO_BYTES >> 20} MiB",
                f"{size / (1 << 20):.1f} MiB", "split it or generate scenarios in code")
        return None
    try:
        if not _events_within_budget(text, log):
            return None
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
    if not _expansion_within_budget(root, log):
        return None
    try:
        _expand_merge_keys(root)
    except ConstructorError as exc:
        mark = exc.problem_mark
        line = int(mark.line) + 1 if mark is not None else None
        log.add(line, "", "a valid YAML merge key (<<)", exc.problem or "an invalid merge")
        return None
    return root


def _events_within_budget(text: str, log: ProblemLog) -> bool:
    """Nesting depth from the event stream, which PyYAML parses without recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                log.add(int(mark.line) + 1 if mark is not None else None, "",
                        f"nesting at most {MAX_DEPTH} levels deep",
                        f"more than {MAX_DEPTH} nested lists/mappings", _BUDGET_FIX)
                return False
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return True


def _expansion_within_budget(root: Node, log: ProblemLog) -> bool:
    """Size and depth of the tree with every alias copied out, without copying.

    Each node's expanded size and height are computed once (aliases share
    nodes), iteratively; an alias of its own ancestor (a cycle) is refused.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
            if size[key] > MAX_EXPANDED_NODES or height[key] > MAX_DEPTH:
                what = (f"{size[key]} nodes" if size[key] > MAX_EXPANDED_NODES
                        else f"{height[key]} levels")
                log.add(line_of(node), "",
                        f"at most {MAX_EXPANDED_NODES} values and {MAX_DEPTH} levels once "
                        "anchors (*alias, <<) are expanded", f"a node that expands to {what}",
                        _BUDGET_FIX)
                return False
            continue
        if key in size:
            continue
        if key in open_:
            log.add(line_of(node), "", "anchors that do not contain themselves",
                    "an alias (*name) inside the node it names", "remove the self-reference")
            return False
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return True


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


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


def load_yaml_file(path: Path, what: str, fix: str) -> Any:
    """A YAML file (a finetune config, a scenario set) as plain data, held to
    the scenario's budgets: size, nesting and alias expansion."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SCENARIO_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NetlabError(f"cannot read the {what}: {exc}", where=str(path), fix=fix) from exc
    log = ProblemLog(str(path))
    root = compose(text, log)
    if log:
        problem = log.problems[0]
        raise NetlabError(f"the {what} is not valid: {problem.expected} expected, "
                          f"found {problem.found}",
                          where=f"{path}:{problem.line}" if problem.line else str(path),
                          fix=problem.hint or fix)
    if root is None:
        return None
    try:
        return SafeConstructor().construct_document(root)
    except yaml.YAMLError as exc:
        raise NetlabError(f"cannot read the {what}: {exc}", where=str(path), fix=fix) from exc
