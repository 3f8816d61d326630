"""The one error base: what went wrong, where, and the fix.

Every package's user-facing errors subclass :class:`LabError` (``NetlabError``,
``ShapingError``, ``EndpointError`` and theirs), so the CLI catches this one
class and prints the same three parts whichever layer raised.
"""

from __future__ import annotations


class LabError(Exception):
    """An error a command prints without a traceback.

    ``where`` names the file and field (or file:line, option, interface)
    concerned; ``fix`` is the action that resolves it.
    """

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.fix = fix

    def render(self) -> str:
        """The three parts on their own lines, as the CLI prints them."""
        lines = [f"error: {self.what}"]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)
