"""The one error shape of the endpoints: what went wrong, where, and the fix.

A subclass of the one error base (:class:`labcore.errors.LabError`), so the
lab's CLI prints it like its own without ``endpoints`` importing ``netlab``.
"""

from __future__ import annotations

from labcore.errors import LabError


class EndpointError(LabError):
    """An error that says what went wrong, where, and how to fix it."""

    def __str__(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(f"where: {self.where}")
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return "; ".join(parts)
