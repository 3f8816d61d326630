"""The one error every trace reader and writer raises.

It carries the same three parts as the lab's user-facing errors (what, where,
fix) without importing ``netlab``: the CLI and the scenario loader wrap it.
"""

from __future__ import annotations

from shaping.errors import ShapingError


class TraceError(ShapingError):
    """A trace file that cannot be read or written as asked.

    ``file`` and ``line`` (1-based, when known) locate the problem; ``fix`` is
    what the user should do about it.  ``where`` is ``file:line`` (or just the
    file), the form editors jump to.
    """

    def __init__(
        self,
        what: str,
        *,
        file: str | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        where = None if file is None else (f"{file}:{line}" if line is not None else file)
        super().__init__(what, where=where, fix=fix)
        self.file = file
        self.line = line
