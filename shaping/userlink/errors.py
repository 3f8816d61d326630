"""Errors of the user-space link, shaped like the lab's (what, where, fix).

``shaping`` may not import ``netlab``, so the lab wraps these into its own
NetlabError by copying the three fields.
"""

from __future__ import annotations


class UserLinkError(Exception):
    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        super().__init__(what if where is None else f"{what} ({where})")
        self.what = what
        self.where = where
        self.fix = fix
