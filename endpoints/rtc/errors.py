"""Errors raised by the RTC library.

They share the what/where/fix shape of :class:`endpoints.errors.EndpointError`.
"""

from __future__ import annotations

from endpoints.errors import EndpointError


class RtcError(EndpointError):
    """An error of this package, with what, where and the fix."""


class PacketError(RtcError, ValueError):
    """Bytes that are not a well-formed RTP/RTCP packet (or a value that cannot be encoded)."""


class PluginError(RtcError):
    """A user's estimator plugin cannot be loaded or misbehaves."""


class MediaFileError(RtcError):
    """A frame-size file cannot be read."""
