"""Errors raised by the TCP endpoints.

They share the what/where/fix shape of :class:`endpoints.errors.EndpointError`.
"""

from __future__ import annotations

from endpoints.errors import EndpointError


class TcpEndpointError(EndpointError):
    """An error of this package, with what, where and the fix."""
