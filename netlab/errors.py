"""User-facing errors: each says what went wrong, where, and how to fix it.

``NetlabError`` is the lab's own subclass of the one base,
:class:`labcore.errors.LabError`, which the CLI catches.
"""

from __future__ import annotations

from labcore.errors import LabError


class NetlabError(LabError):
    """An error the CLI prints without a traceback.

    ``where`` names the file/field or object concerned; ``fix`` is the
    action that resolves it.
    """
