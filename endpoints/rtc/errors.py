"""Errors raised by the RTC library.

``endpoints`` must not import ``netlab``, so these mirror ``NetlabError``'s
what/where/fix shape; the lab wraps them for the CLI.
"""

from __future__ import annotations


class RtcError(Exception):
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


class PacketError(RtcError, ValueError):
    """Bytes that are not a well-formed RTP/RTCP packet (or a value that cannot be encoded)."""


class PluginError(RtcError):
    """A user's estimator plugin cannot be loaded or misbehaves."""


class MediaFileError(RtcError):
    """A frame-size file cannot be read."""
