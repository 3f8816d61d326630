"""The error the shaping backends raise.

It carries the same three parts as the lab's user-facing errors (what, where,
fix) without importing ``netlab``: the lab wraps or re-renders it.
"""

from __future__ import annotations


class ShapingError(Exception):
    """A link that cannot be shaped as asked.

    ``where`` names the interface (and field) concerned; ``fix`` is the action
    that resolves it; ``errno`` is the kernel's error number when the kernel
    refused a netlink request.
    """

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        fix: str | None = None,
        errno: int | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.fix = fix
        self.errno = errno

    def render(self) -> str:
        lines = [f"error: {self.what}"]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} ({self.fix})" if self.fix else text
