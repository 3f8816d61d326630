"""Atomic JSON files: a reader sees the old document or the new one, never half.

The text goes to a temporary file beside the target (same directory, so the
same filesystem) and ``os.replace`` swaps it in, which POSIX makes atomic.
The temporary name carries the process id so two writers of one file never
share a temporary.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path``'s contents with ``text`` in one step."""
    target = Path(path)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, indent: int | None = None,
                      compact: bool = False, sort_keys: bool = False, default: Any = None,
                      trailing_newline: bool = False) -> None:
    """``json.dumps(data)`` to ``path`` atomically.

    ``compact`` drops the spaces after separators (state files read by
    machines); ``default`` is json's fallback for other types.
    """
    separators = (",", ":") if compact else None
    text = json.dumps(data, indent=indent, separators=separators, sort_keys=sort_keys,
                      default=default)
    write_text_atomic(path, text + "\n" if trailing_newline else text)
