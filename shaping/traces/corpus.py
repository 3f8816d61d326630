"""The bundled trace corpus (the repository's ``traces/`` directory) by short name.

A short name is a file's path under ``traces/`` without its format suffix
(``.json``, ``.csv``, ``.trace``, ``.txt``): ``cellular/verizon-lte-short.up``,
``opennetlab/low/4g-500kbps``, ``steps/10-2-10mbit``. Mahimahi's ``.up`` and
``.down`` stay in the name because they say which direction a file is for.
A leading ``traces/`` is accepted, so a scenario may write either form.
``NETLAB_TRACES_DIR`` points at another corpus (tests, users' own sets).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from shaping.traces.errors import TraceError

TRACE_SUFFIXES = (".json", ".csv", ".trace", ".txt")
_NOT_TRACES = {".md", ".py", ".sh", ".png"}
ENV_VAR = "NETLAB_TRACES_DIR"


def corpus_dir(override: Path | None = None) -> Path:
    """Where the bundled traces live (override, then $NETLAB_TRACES_DIR, then the repo's)."""
    if override is not None:
        return override
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env)
    return Path(__file__).resolve().parents[2] / "traces"


@dataclass(frozen=True)
class CorpusEntry:
    name: str
    path: Path


def short_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root).as_posix()
    for suffix in TRACE_SUFFIXES:
        if relative.endswith(suffix):
            return relative[: -len(suffix)]
    return relative


def list_traces(root: Path | None = None) -> list[CorpusEntry]:
    """Every trace file in the corpus, sorted by short name."""
    base = corpus_dir(root)
    if not base.is_dir():
        return []
    entries = [
        CorpusEntry(short_name(path, base), path)
        for path in base.rglob("*")
        if path.is_file()
        and path.parent != base
        and path.suffix not in _NOT_TRACES
        and not any(part.startswith(".") for part in path.relative_to(base).parts)
    ]
    return sorted(entries, key=lambda entry: entry.name)


def matching(patterns: list[str] | tuple[str, ...], root: Path | None = None
             ) -> tuple[list[str], list[str]]:
    """(corpus names matching any fnmatch pattern, in order without repeats; the
    patterns that matched none)."""
    names = [entry.name for entry in list_traces(root)]
    chosen: list[str] = []
    unmatched: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            unmatched.append(pattern)
        chosen += [h for h in hits if h not in chosen]
    return chosen, unmatched


def resolve(name: str, root: Path | None = None) -> Path:
    """The file behind a short name; a TraceError listing near names if none."""
    base = corpus_dir(root)
    wanted = name.removeprefix("traces/").strip("/")
    candidates = [base / wanted] + [base / (wanted + suffix) for suffix in TRACE_SUFFIXES]
    found = [path for path in candidates if path.is_file()]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise TraceError(
            f"trace name {name!r} is ambiguous: {', '.join(p.name for p in found)}",
            file=str(base),
            fix="write the name with its suffix",
        )
    leaf = wanted.rsplit("/", 1)[-1]
    near = [e.name for e in list_traces(base) if leaf and leaf.split(".")[0] in e.name][:5]
    hint = f" (similar: {', '.join(near)})" if near else ""
    raise TraceError(
        f"no trace named {name!r} in the corpus{hint}",
        file=str(base),
        fix="give a file path, or a name from `netlab traces list`",
    )
