"""Errors of the user-space link, shaped like the lab's (what, where, fix).

``shaping`` may not import ``netlab``, so the lab wraps these into its own
NetlabError by copying the three fields.
"""

from __future__ import annotations

from shaping.errors import ShapingError


class UserLinkError(ShapingError):
    """A user-space link that cannot be built or run as asked."""
