"""The one error every trace reader and writer raises.

It carries the same three parts as the lab's user-facing errors (what, where,
fix) without importing ``netlab``: the CLI and the scenario loader wrap it.
"""

from __future__ import annotations


class TraceError(Exception):
    """A trace file that cannot be read or written as asked.

    ``file`` and ``line`` (1-based, when known) locate the problem; ``fix`` is
    what the user should do about it.
    """

    def __init__(
        self,
        what: str,
        *,
        file: str | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.file = file
        self.line = line
        self.fix = fix

    @property
    def where(self) -> str | None:
        """``file:line`` (or just the file) in the form editors jump to."""
        if self.file is None:
            return None
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def render(self) -> str:
        lines = [f"error: {self.what}"]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def __str__(self) -> str:
        where = self.where
        text = f"{where}: {self.what}" if where else self.what
        return f"{text} ({self.fix})" if self.fix else text
