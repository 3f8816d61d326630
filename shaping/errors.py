"""The error the shaping backends raise.

A subclass of the one error base (:class:`labcore.errors.LabError`: what,
where, fix), so the CLI prints it like any other without ``shaping`` importing
``netlab``.
"""

from __future__ import annotations

from labcore.errors import LabError


class ShapingError(LabError):
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
        super().__init__(what, where=where, fix=fix)
        self.errno = errno

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} ({self.fix})" if self.fix else text
