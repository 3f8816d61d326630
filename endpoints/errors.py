"""The one error shape of the endpoints: what went wrong, where, and the fix.

``endpoints`` must not import ``netlab``, so this mirrors ``NetlabError``'s
what/where/fix shape; the lab wraps it for the CLI.
"""

from __future__ import annotations


class EndpointError(Exception):
    """An error that says what went wrong, where, and how to fix it."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.fix = fix

    def __str__(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(f"where: {self.where}")
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return "; ".join(parts)
