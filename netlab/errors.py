"""User-facing errors: each says what went wrong, where, and how to fix it."""

from __future__ import annotations


class NetlabError(Exception):
    """An error the CLI prints without a traceback.

    ``where`` names the file/field or object concerned; ``fix`` is the
    action that resolves it.
    """

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.fix = fix

    def render(self) -> str:
        lines = [f"error: {self.what}"]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)
