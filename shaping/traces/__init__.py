"""Bandwidth traces: read, write, generate and name them.

Every format becomes one :class:`Trace` (piecewise capacity, optional delay,
loss and jitter series; exact opportunities for Mahimahi files), so shaping
backends never look at file formats. Readers are strict: each problem is a
:class:`TraceError` with the file, the line and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shaping.traces import budgets, corpus, genet, mahimahi, opennetlab, pensieve
from shaping.traces._jsonloc import load_located_json
from shaping.traces.errors import TraceError
from shaping.traces.generator import GenetParams, generate, steps
from shaping.traces.model import MAHIMAHI_PACKET_BYTES, Segment, Trace

__all__ = [
    "FORMATS",
    "MAHIMAHI_PACKET_BYTES",
    "GenetParams",
    "Segment",
    "Trace",
    "TraceError",
    "detect_format",
    "format_for_path",
    "format_trace",
    "generate",
    "load_trace",
    "parse_trace",
    "steps",
    "write_trace",
]

#: Format names, as accepted by ``format=`` and the CLI.
FORMATS = ("mahimahi", "opennetlab", "genet", "genet-csv", "pensieve")

_WRITERS: dict[str, Callable[[Trace], str]] = {
    "mahimahi": mahimahi.format_text,
    "opennetlab": opennetlab.format_text,
    "genet": genet.format_json,
    "genet-csv": genet.format_csv,
    "pensieve": pensieve.format_text,
}


def _unknown_format(fmt: str, file: str | None) -> TraceError:
    return TraceError(
        f"unknown trace format {fmt!r}", file=file, fix=f"use one of: {', '.join(FORMATS)}"
    )


def detect_format(text: str, file: str = "<text>") -> str:
    """Guess the format from the content (the first line, or the JSON's keys)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        document = load_located_json(text, file)
        if opennetlab.looks_like(document):
            return "opennetlab"
        if genet.looks_like(document):
            return "genet"
        raise TraceError(
            "JSON trace is neither OpenNetLab ('uplink.trace_pattern') nor Genet ('timestamps')",
            file=file,
            line=1,
            fix="check the top-level keys, or pass the format explicitly",
        )
    first = text.split("\n", 1)[0].strip()
    if first.replace(" ", "").startswith("Timestamp,"):
        return "genet-csv"
    if first.isdigit():
        return "mahimahi"
    if len(first.split()) == 2:
        return "pensieve"
    raise TraceError(
        f"cannot tell the trace format from its first line {first[:40]!r}",
        file=file,
        line=1,
        fix=f"pass the format explicitly (one of: {', '.join(FORMATS)})",
    )


def parse_trace(
    text: str, *, file: str = "<text>", name: str = "", format: str | None = None
) -> Trace:
    """Parse trace text in ``format`` (detected from the content when None)."""
    budgets.check_file_size(len(text), file)
    fmt = format or detect_format(text, file)
    if fmt in ("opennetlab", "genet"):
        document = load_located_json(text, file)
        reader = opennetlab.from_document if fmt == "opennetlab" else genet.from_document
        return reader(document, file, name)
    if fmt == "mahimahi":
        return mahimahi.parse(text, file, name)
    if fmt == "genet-csv":
        return genet.parse_csv(text, file, name)
    if fmt == "pensieve":
        return pensieve.parse(text, file, name)
    raise _unknown_format(fmt, file)


def _locate(path_or_name: str, base_dir: Path | None, corpus_root: Path | None) -> tuple[Path, str]:
    path = Path(path_or_name).expanduser()
    if path.is_absolute():
        if path.is_file():
            return path, path.name
        raise TraceError(f"trace file {path} does not exist", file=str(path), fix="check the path")
    near = (base_dir or Path.cwd()) / path
    if near.is_file():
        return near, path.name
    try:
        found = corpus.resolve(path_or_name, corpus_root)
    except TraceError as exc:
        raise TraceError(
            f"no trace file {near} and {exc.what}", file=exc.file, fix=exc.fix
        ) from None
    return found, corpus.short_name(found, corpus.corpus_dir(corpus_root))


def load_trace(
    path_or_name: str,
    base_dir: Path | None = None,
    *,
    format: str | None = None,
    corpus_root: Path | None = None,
) -> Trace:
    """Load a trace from a file path or a bundled short name.

    A relative path is tried against ``base_dir`` (default: the working
    directory; a scenario passes its own directory), then as a corpus name
    (``cellular/verizon-lte-short.up``). The format is detected unless given.
    """
    path, name = _locate(path_or_name, base_dir, corpus_root)
    if format is not None and format not in FORMATS:
        raise _unknown_format(format, str(path))
    try:
        budgets.check_file_size(path.stat().st_size, str(path))
        text = path.read_bytes().decode("utf-8")  # keep CR: mm-link rejects CR LF files
    except UnicodeDecodeError:
        raise TraceError(
            "trace file is not text (UTF-8)", file=str(path), fix="give a text trace file"
        ) from None
    except OSError as exc:
        raise TraceError(
            f"cannot read trace file: {exc.strerror}", file=str(path), fix="check the path"
        ) from None
    return parse_trace(text, file=str(path), name=name, format=format)


def format_for_path(path: Path) -> str:
    """The format a file name suggests for writing (``.json`` means OpenNetLab)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "opennetlab"
    if suffix == ".csv":
        return "genet-csv"
    if suffix in (".txt", ".log"):
        return "pensieve"
    return "mahimahi"  # .up, .down, .trace, no suffix: what Mahimahi users name them


def format_trace(trace: Trace, format: str) -> str:
    """The text of ``trace`` in ``format``."""
    writer = _WRITERS.get(format)
    if writer is None:
        raise _unknown_format(format, None)
    return writer(trace)


def write_trace(trace: Trace, path: Path, format: str | None = None) -> None:
    """Write ``trace`` to ``path`` in ``format`` (from the suffix when None)."""
    fmt = format or format_for_path(path)
    try:
        text = format_trace(trace, fmt)
    except TraceError as exc:
        exc.file = exc.file or str(path)
        raise
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TraceError(
            f"cannot write trace file: {exc.strerror}", file=str(path), fix="check the directory"
        ) from None
